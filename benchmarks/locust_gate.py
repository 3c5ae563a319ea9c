"""Launch gate: 1000 Locust users (1-5 s think time) against the standalone API, with targets.

Seeds a scratch database with `--keys` API keys (each with videos, some with transcripts),
starts `clipforge api --workers N` on 127.0.0.1 (the server as shipped: its header limits,
keep-alive and backlog; Prometheus multiprocess mode), runs `benchmarks/locustfile.py` headless for `--run-time`, and prints per
request class p50/p95/p99, request counts and errors against the p95 targets, plus each API
process's peak RSS (target < 512 MB). Exits 1 when a target is missed or a request failed.

Usage: DATABASE_URL=... REDIS_URL=redis://127.0.0.1:6379/15 \
    python -m benchmarks.locust_gate --users 1000 --run-time 60s
(the Redis database given is flushed first; presigned uploads are signed locally against a
placeholder S3 endpoint that is never contacted).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psutil
import psycopg
import redis
from psycopg.rows import dict_row

from benchmarks._db import scratch_database
from clipforge.db.repo.api_keys import create_api_key
from clipforge.db.repo.transcripts import replace_transcript
from clipforge.types import ModelInfo, Segment, Transcript, Word

# p95 targets of issue #13 by request class (ms).
TARGETS_MS = {
    "GET /v1/videos": 100,
    "GET /v1/videos?cursor": 100,
    "GET /v1/videos/{id}/clips": 100,
    "GET /v1/videos/{id}": 200,
    "GET /v1/videos/{id}/transcript": 200,
    "GET /v1/jobs/{id}": 200,
    "POST /v1/videos (url)": 500,
    "POST /v1/videos (upload)": 500,
}
RSS_LIMIT_MB = 512


def seed(url: str, n_keys: int, videos_per_key: int, path: Path) -> None:
    """Keys with videos (the first 3 of each with a short transcript), written to `path`."""
    words = tuple(Word(i * 0.5, i * 0.5 + 0.4, f"word{i}") for i in range(40))
    transcript = Transcript(
        language="en",
        duration=20.0,
        segments=(Segment(0.0, 20.0, " ".join(w.text for w in words), words),),
        model=ModelInfo("bench", "1", "0" * 64),
    )
    keys = []
    with psycopg.connect(url, row_factory=dict_row) as conn:
        for i in range(n_keys):
            key, raw = create_api_key(conn, name=f"locust-{i}")
            rows = conn.execute(
                """INSERT INTO videos (id, owner_key_id, source_kind, source_url, status)
                   SELECT gen_random_uuid(), %s, 'url', 'https://93.184.216.34/v.mp4', 'ready'
                   FROM generate_series(1, %s) RETURNING id""",
                (key.id, videos_per_key),
            ).fetchall()
            ids = [r["id"] for r in rows]
            for video_id in ids[:3]:
                replace_transcript(conn, video_id=video_id, transcript=transcript)
            keys.append(
                {
                    "token": raw,
                    "videos": [str(v) for v in ids],
                    "transcripts": [str(v) for v in ids[:3]],
                }
            )
    path.write_text(json.dumps(keys))


class RssSampler(threading.Thread):
    """Peak resident memory of each process under `root` (the API's workers), every 0.5 s."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak_mb: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                parent = psutil.Process(self.root)
                procs = [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for proc in procs:
                try:
                    mb = proc.memory_info().rss / 2**20
                except psutil.NoSuchProcess:
                    continue
                self.peak_mb[proc.pid] = max(self.peak_mb.get(proc.pid, 0.0), mb)


def _wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}")
        time.sleep(0.5)
    raise TimeoutError("the API did not become healthy")


def report(stats_csv: Path, peak_mb: dict[int, float]) -> bool:
    """Print the table; True when every target was met and nothing failed."""
    ok = True
    print(
        f"\n{'request class':32s} {'reqs':>7s} {'fails':>6s} {'p50':>6s} {'p95':>6s} "
        f"{'p99':>6s} {'target p95':>10s} {'met':>4s}"
    )
    with stats_csv.open() as f:
        for row in csv.DictReader(f):
            name = row["Name"]
            if name == "Aggregated":
                name = "all"
            p50, p95, p99 = (float(row[c] or 0) for c in ("50%", "95%", "99%"))
            fails = int(row["Failure Count"])
            target = TARGETS_MS.get(name)
            met = fails == 0 and (target is None or p95 < target)
            ok &= met
            print(
                f"{name:32s} {int(row['Request Count']):7d} {fails:6d} {p50:6.0f} {p95:6.0f} "
                f"{p99:6.0f} {('<' + str(target)) if target else '':>10s} "
                f"{'yes' if met else 'NO':>4s}"
            )
    for pid, mb in sorted(peak_mb.items()):
        print(f"API process {pid}: peak RSS {mb:.0f} MB (limit {RSS_LIMIT_MB})")
        ok &= mb < RSS_LIMIT_MB
    print("load average (1, 5, 15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--spawn-rate", type=float, default=100.0, help="users started per second")
    parser.add_argument("--run-time", default="60s", help="Locust --run-time (bounded)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--keys", type=int, default=250, help="API keys the users share")
    parser.add_argument("--videos-per-key", type=int, default=60)
    parser.add_argument("--port", type=int, default=18100)
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    redis.Redis.from_url(redis_url).flushdb()
    with scratch_database() as url, tempfile.TemporaryDirectory() as tmp:
        keys_file = Path(tmp) / "keys.json"
        seed(url, args.keys, args.videos_per_key, keys_file)
        metrics_dir = Path(tmp) / "metrics"
        metrics_dir.mkdir()
        env = os.environ | {
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            # Presigning is local computation; this endpoint is never contacted.
            "S3_BUCKET": "locust",
            "S3_ENDPOINT_URL": "http://127.0.0.1:9",
            "S3_ACCESS_KEY_ID": "locust",
            "S3_SECRET_ACCESS_KEY": "locust-secret",
            "CF_KEYS": str(keys_file),
        }
        api = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("clipforge")), "api", "--host", "127.0.0.1",
                "--port", str(args.port), "--workers", str(args.workers),
            ],
            env=env,
            start_new_session=True,
        )  # fmt: skip
        sampler = RssSampler(api.pid)
        try:
            _wait_healthy(args.port, api)
            sampler.start()
            prefix = Path(tmp) / f"locust-{uuid.uuid4().hex[:6]}"
            subprocess.run(
                [
                    sys.executable, "-m", "locust", "-f", "benchmarks/locustfile.py",
                    "--headless", "-u", str(args.users), "-r", str(args.spawn_rate),
                    "--run-time", args.run_time, "--host", f"http://127.0.0.1:{args.port}",
                    "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
                    "--stop-timeout", "5", "--reset-stats",
                ],
                env=env,
                check=False,
                timeout=_seconds(args.run_time) + 120,
            )  # fmt: skip
            sampler.stop.set()
            ok = report(Path(f"{prefix}_stats.csv"), sampler.peak_mb)
        finally:
            sampler.stop.set()
            os.killpg(api.pid, signal.SIGTERM)
            try:
                api.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(api.pid, signal.SIGKILL)
                api.wait()
    sys.exit(0 if ok else 1)


def _seconds(run_time: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(run_time[:-1]) * units[run_time[-1]] if run_time[-1] in units else int(run_time)


if __name__ == "__main__":
    main()
