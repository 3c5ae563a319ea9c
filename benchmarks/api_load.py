"""API load benchmark: the same app behind the Ray Serve proxy (default and HAProxy mode) and
standalone under uvicorn, side by side, with the brief's p95 targets.

Scenarios (each at 50 and 200 concurrent connections, `--seconds` long, traffic to 127.0.0.1
only): `health`; `list` (20 newest videos of a key); `detail_cached` (10 videos read over and
over, served from Redis); `detail_uncached` (every request a different video, Redis emptied
first, so each is a Postgres read plus a cache fill); `create` (a URL import: row + job).
The load generator is wrk (`apt-get install -y wrk`) with a Lua script that reports p50/p95/p99.
Servers run one at a time; wrk shares the machine's cores with them, as in the figures of docs/capacity.md.

Modes: `serve`, `serve-haproxy`, `uvicorn` (one process), `uvicorn-w2` (two worker processes,
Prometheus multiprocess mode, as `clipforge api --workers 2`), and `baseline`: one uvicorn
process running another copy of the code (`--baseline-tree DIR`, e.g. an export of main made
with `git archive`), so before/after figures come from one run under the same machine load.
`uvicorn-replica`: the `uvicorn` mode with a streaming read replica (DATABASE_REPLICA_URL).
Asking for it starts a private primary and a `pg_basebackup -R` replica of it
(`tests/utils/pg_replica.py`) and runs every mode of the run on that primary, so
`--modes uvicorn uvicorn-replica` prints list/detail p95 with and without the replica side by
side, plus the reads each server sent to the replica (from its /metrics). On one machine the
replica shares the cores with everything else: it shows the routing's cost, not the capacity a
replica on its own machine adds.
The load average is printed with the table: on a shared machine, compare only within a run.

Usage: DATABASE_URL=... REDIS_URL=redis://127.0.0.1:6379/15 python -m benchmarks.api_load
(a scratch database is created and dropped; the Redis database given is flushed between runs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import redis
from psycopg.rows import dict_row

from benchmarks._db import scratch_database
from clipforge.db.repo.api_keys import create_api_key

SCENARIOS = ("health", "list", "detail_cached", "detail_uncached", "create")
TARGET_P95_MS = {
    "health": 50,
    "list": 100,
    "detail_cached": 200,
    "detail_uncached": 200,
    "create": 500,
}
_LUA = r"""
local mode = os.getenv("CF_MODE")
local token = os.getenv("CF_TOKEN")
local ids = {}
local counter = 0
local nthreads = 2
local tid = 0
function setup(thread)
  thread:set("tid", tid)
  tid = tid + 1
end
function init(args)
  for line in io.lines(os.getenv("CF_IDS")) do ids[#ids + 1] = line end
end
function request()
  counter = counter + 1
  local headers = { ["Authorization"] = "Bearer " .. token }
  if mode == "health" then
    return wrk.format("GET", "/health")
  elseif mode == "list" then
    return wrk.format("GET", "/v1/videos?limit=20", headers)
  elseif mode == "detail_cached" then
    return wrk.format("GET", "/v1/videos/" .. ids[(counter % 10) + 1], headers)
  elseif mode == "detail_uncached" then
    local i = (tid + nthreads * counter) % #ids + 1
    return wrk.format("GET", "/v1/videos/" .. ids[i], headers)
  else
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", "/v1/videos", headers,
      '{"source_url": "https://93.184.216.34/bench.mp4"}')
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"p50":%d,"p95":%d,"p99":%d,"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d}\n',
    latency:percentile(50), latency:percentile(95), latency:percentile(99), summary.requests,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def serve_driver(port: int) -> None:
    """Run in a child process: local Ray + Serve with the API ingress only (no model replicas)."""
    import ray
    from ray import serve

    from serve_apps.deployments.app import ClipForgeAppArgs, IngressArgs, ModelArgs, build_app

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    off = ModelArgs(enabled=False)
    args = ClipForgeAppArgs(ingress=IngressArgs(num_cpus=1), asr=off, highlight=off, caption=off)
    serve.run(build_app(args), name="clipforge-bench", route_prefix="/")
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    while not stop["now"]:
        time.sleep(0.2)
    serve.shutdown()  # type: ignore[no-untyped-call]
    ray.shutdown()


def _seed(url: str, n_videos: int) -> tuple[str, list[str]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        key, raw = create_api_key(conn, name="bench")
        rows = conn.execute(
            """INSERT INTO videos (id, owner_key_id, source_kind, source_url, status)
               SELECT gen_random_uuid(), %s, 'url', 'https://93.184.216.34/v.mp4', 'ready'
               FROM generate_series(1, %s) RETURNING id""",
            (key.id, n_videos),
        ).fetchall()
    return raw, [str(r["id"]) for r in rows]


@contextlib.contextmanager
def _server(
    mode: str, port: int, env: dict[str, str], baseline_tree: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    cwd = None
    if mode == "uvicorn-replica":
        env = env | {"DATABASE_REPLICA_URL": env["CF_REPLICA_URL"]}
    if mode in ("uvicorn", "uvicorn-w2", "baseline", "uvicorn-replica"):
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "serve_apps.api.main:create_app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        if mode == "uvicorn-w2":
            cmd += ["--workers", "2"]
            env = env | {"PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="cf-bench-metrics-")}
        if mode == "baseline":
            cwd = baseline_tree  # `python -m` puts the working directory first on sys.path
    else:
        cmd = [sys.executable, "-m", "benchmarks.api_load", "--serve-driver", str(port)]
        if mode == "serve-haproxy":
            env = env | {"RAY_SERVE_ENABLE_HA_PROXY": "1"}
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"{mode} server exited with {proc.returncode}")
            time.sleep(0.5)
        else:
            raise TimeoutError(f"{mode} server did not become healthy")
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wrk(
    port: int, scenario: str, conns: int, seconds: int, env: dict[str, str], script: Path
) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{conns}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        env=env | {"CF_MODE": scenario},
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=4, help="length of each run")
    parser.add_argument("--connections", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--modes", nargs="+", default=["serve", "serve-haproxy", "uvicorn"])
    parser.add_argument(
        "--baseline-tree", type=Path, help="code to run in `baseline` mode (a copy of main)"
    )
    parser.add_argument(
        "--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS, help="subset to run"
    )
    parser.add_argument("--serve-driver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_driver:
        serve_driver(args.serve_driver)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    if "baseline" in args.modes and args.baseline_tree is None:
        sys.exit("baseline mode needs --baseline-tree")
    modes = [m for m in args.modes if m != "serve-haproxy" or shutil.which("haproxy")]
    if len(modes) < len(args.modes):
        print("haproxy not installed (apt-get install -y haproxy): skipping serve-haproxy")
    results: list[tuple[str, str, int, dict[str, float]]] = []
    routed: dict[str, dict[str, float]] = {}
    with contextlib.ExitStack() as stack:
        pair = None
        if "uvicorn-replica" in modes:
            from tests.utils.pg_replica import ReplicaPair

            pair = ReplicaPair()
            stack.callback(pair.close)
        url = stack.enter_context(scratch_database(pair.primary_url if pair else None))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        token, ids = _seed(url, 30_000)
        replica_url = ""
        if pair is not None:
            pair.wait_caught_up(timeout_s=120)
            dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
            replica_url = psycopg.conninfo.make_conninfo(pair.replica_url, dbname=str(dbname))
        (Path(tmp) / "ids.txt").write_text("\n".join(ids) + "\n")
        script = Path(tmp) / "load.lua"
        script.write_text(_LUA)
        env = os.environ | {
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "RATE_LIMIT_PER_MINUTE": "100000000",
            "RATE_LIMIT_BURST": "1000000",
            "LOG_LEVEL": "WARNING",
            "CF_TOKEN": token,
            "CF_IDS": str(Path(tmp) / "ids.txt"),
            "CF_REPLICA_URL": replica_url,
            "HF_HUB_OFFLINE": "1",
        }
        flush = redis.Redis.from_url(redis_url)
        for i, mode in enumerate(modes):
            port = 18000 + i
            with _server(mode, port, env, args.baseline_tree):
                for conns in args.connections:
                    for scenario in args.scenarios:
                        if scenario == "detail_uncached":
                            flush.flushdb()
                        print(f"  {mode:14s} {scenario:16s} c={conns}", flush=True)
                        results.append(
                            (
                                mode,
                                scenario,
                                conns,
                                _wrk(port, scenario, conns, args.seconds, env, script),
                            )
                        )
                routed[mode] = _routed_reads(port)
    _print_table(results)
    _print_replica_comparison(results, routed)


def _label(line: str, name: str) -> str:
    return line.split(f'{name}="', 1)[1].split('"', 1)[0]


def _routed_reads(port: int) -> dict[str, float]:
    """From the server's /metrics: reads by target (a replica, or `primary:<reason>`) and
    answers other than 2xx (`HTTP <status>`), to see where reads went and what the errors were.
    """
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    totals: dict[str, float] = {}
    for line in text.splitlines():
        name = ""
        if line.startswith("clipforge_db_reads_total{"):
            name = _label(line, "target")
            if name == "primary":
                name += ":" + _label(line, "reason")
        elif line.startswith("clipforge_http_requests_total{"):
            status = _label(line, "status")
            name = "" if status.startswith("2") else f"HTTP {status}"
        if name:
            totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def _print_replica_comparison(
    results: list[tuple[str, str, int, dict[str, float]]], routed: dict[str, dict[str, float]]
) -> None:
    """List/detail p95 without and with the read replica, from the same run."""
    p95 = {(m, sc, c): r["p95"] / 1000 for m, sc, c, r in results}
    pairs = sorted(
        (sc, c)
        for m, sc, c in p95
        if m == "uvicorn-replica" and sc in ("list", "detail_uncached", "detail_cached")
    )
    if not pairs:
        return
    print()
    print("read replica, same run (p95 ms): scenario conns  primary-only  with-replica")
    for sc, c in pairs:
        without = p95.get(("uvicorn", sc, c))
        shown = f"{without:12.1f}" if without is not None else f"{'-':>12s}"
        print(f"  {sc:16s} {c:5d} {shown}  {p95[('uvicorn-replica', sc, c)]:12.1f}")
    for mode, targets in routed.items():
        if targets:
            spread = ", ".join(f"{t}: {n:.0f}" for t, n in sorted(targets.items()))
            print(f"{mode}: reads by target, non-2xx answers: {spread}")


def _print_table(results: list[tuple[str, str, int, dict[str, float]]]) -> None:
    print()
    print("load average (1, 5, 15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(
        f"{'scenario':16s} {'conns':>5s} {'mode':14s} {'req/s':>8s} {'p50 ms':>8s} {'p95 ms':>8s} "
        f"{'p99 ms':>8s} {'errors':>7s} {'target p95':>10s} {'met':>4s}"
    )
    for scenario in SCENARIOS:
        for mode, sc, conns, r in sorted(results, key=lambda x: (x[2], x[0])):
            if sc != scenario:
                continue
            rps = r["requests"] / (r["duration_us"] / 1e6)
            p95 = r["p95"] / 1000
            target = TARGET_P95_MS[scenario]
            errors = int(r["non2xx"] + r["socket_errors"])
            print(
                f"{scenario:16s} {conns:5d} {mode:14s} {rps:8.0f} {r['p50'] / 1000:8.1f} {p95:8.1f} "
                f"{r['p99'] / 1000:8.1f} {errors:7d} {'<' + str(target):>10s} {'yes' if p95 < target else 'no':>4s}"
            )
    rates = {(m, sc, c): r["requests"] / (r["duration_us"] / 1e6) for m, sc, c, r in results}
    for mode, sc, conns in sorted(rates):
        health = rates.get((mode, "health", conns))
        if sc == "detail_cached" and health:
            share = rates[(mode, sc, conns)] / health
            print(f"cached detail / health throughput, {mode} c={conns}: {share:.0%}")


if __name__ == "__main__":
    main()
