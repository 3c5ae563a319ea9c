"""The API on a real 3-master Redis Cluster (REDIS_CLUSTER_URL; tests/utils/redis_cluster.py).

- Two API processes (uvicorn) share the cluster: a write through one, or by a worker-style
  writer, is seen at once by a read through the other (the cache is invalidated on the
  cluster), and a key's rate limit is global: its burst is spent across both processes.
- A master SIGKILLed during a stream of API requests (the master holding some videos' cached
  rows and some keys' limits): every caller still gets its 200 with the right body, no request
  stalls past the API's outage bound, and once the master is started again the cache fills
  on it again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from clipforge.cache import Cache
from clipforge.db.pool import Pool
from clipforge.db.repo.api_keys import ApiKey
from clipforge.db.repo.videos import update_video
from clipforge.metrics import CACHE_ERRORS
from clipforge.redis_client import create_redis
from clipforge.settings import Settings
from serve_apps.api.app import create_app
from serve_apps.api.deps import ApiDeps
from tests.utils.factories import make_key, make_video
from tests.utils.redis_cluster import RedisCluster, redis_cluster
from tests.utils.servers import free_port, wait_for_port
from tests.utils.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
BURST = 5  # per key, across every process; one more request per minute after it
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A 3-master cluster for this module."""
    with redis_cluster(tmp_path_factory.mktemp("api-redis-cluster")) as running:
        yield running


def _cluster_settings(settings: Settings, cluster: RedisCluster, **extra: object) -> Settings:
    return settings.model_copy(update={"redis_url": None, "redis_cluster_url": cluster.url} | extra)


def _api(
    settings: Settings, cluster: RedisCluster, port: int, data: Path
) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "DATABASE_URL": str(settings.database_url),
        "REDIS_URL": "",
        "REDIS_CLUSTER_URL": cluster.url,
        "ENVIRONMENT": "test",
        "DATA_DIR": str(data),
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_PER_MINUTE": "1",
        "RATE_LIMIT_BURST": str(BURST),
    }
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "serve_apps.api.main:create_app_from_env"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(
        [*cmd, "--no-access-log"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def two_apis(
    api_settings: Settings, cluster: RedisCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Two API processes on the cluster; yields their base URLs."""
    data = tmp_path_factory.mktemp("api-data")
    ports = [free_port(), free_port()]
    procs = [_api(api_settings, cluster, port, data) for port in ports]
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_for_port(port, timeout_s=60, proc=proc)
        yield [f"http://127.0.0.1:{p}" for p in ports]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_writes_through_one_process_are_read_fresh_through_the_other(
    two_apis: list[str], api_settings: Settings, cluster: RedisCluster, db: Pool
) -> None:
    a, b = (httpx.Client(base_url=url, timeout=10) for url in two_apis)
    key, raw = make_key(db, "fresh")
    auth = {"Authorization": f"Bearer {raw}"}
    video = make_video(db, key, status="ready")  # settled: cached for 5 minutes
    url = f"/v1/videos/{video.id}"
    assert a.get(url, headers=auth).json()["status"] == "ready"
    writer = Cache(create_redis(_cluster_settings(api_settings, cluster)))  # the worker's cache
    assert writer.client is not None
    cached = writer.client.get(writer.full_key("video", str(video.id)))
    assert cached is not None and b'"status":"ready"' in cached  # it is in the cluster

    # A worker-style write: the row, then the invalidation, as pipelines/stages/lifecycle.py does.
    with db.connection() as conn:
        update_video(conn, video_id=video.id, status="failed", error="re-run failed")
    writer.invalidate("video", str(video.id))
    assert b.get(url, headers=auth).json()["status"] == "failed"

    # A write through the API in one process; the other process reads the result at once.
    assert b.delete(url, headers=auth).status_code == 204
    assert a.get(url, headers=auth).status_code == 404
    writer.client.close()


def test_a_keys_rate_limit_is_global_across_two_processes(two_apis: list[str], db: Pool) -> None:
    clients = [httpx.Client(base_url=url, timeout=10) for url in two_apis]
    _, raw = make_key(db, "limited")
    auth = {"Authorization": f"Bearer {raw}"}
    served: list[tuple[int, int]] = []
    for i in range(2 * BURST + 2):
        r = clients[i % 2].get("/v1/videos", headers=auth)
        served.append((i % 2, r.status_code))
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
    ok = [p for p, status in served if status == 200]
    refused = [p for p, status in served if status == 429]
    # Per-process limits would let 2 x BURST through; one shared limit lets BURST through.
    assert len(ok) == BURST and len(refused) == BURST + 2, served
    assert set(ok) == {0, 1} and set(refused) == {0, 1}  # both processes counted and refused


def _errors() -> float:
    """Cache errors counted under any op: a lost master may first fail the limiter's
    read-ahead ("readahead"), a plain read ("get") or the limit itself ("ratelimit")."""
    return sum(
        sample.value
        for metric in CACHE_ERRORS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


Owned = list[tuple[ApiKey, dict[str, str], str]]


def _stream(
    client: TestClient, owned: Owned, seconds: float, at: float, fault: Callable[[], None]
) -> tuple[list[str], list[float], int]:
    """GETs (detail, clips, list) of every key's video for `seconds`; `fault()` runs `at` s in.

    Returns the failed requests, every latency, and how many requests came after the fault.
    """
    failures: list[str] = []
    latencies: list[float] = []
    done = threading.Event()

    def inject() -> None:
        time.sleep(at)
        fault()
        done.set()

    threading.Thread(target=inject, daemon=True).start()
    started = time.monotonic()
    after = 0
    while time.monotonic() - started < seconds:
        for _, auth, vid in owned:
            for path in (f"/v1/videos/{vid}", f"/v1/videos/{vid}/clips", "/v1/videos"):
                t0 = time.monotonic()
                r = client.get(path, headers=auth)
                latencies.append(time.monotonic() - t0)
                after += done.is_set()
                if r.status_code != 200:
                    failures.append(f"{path}: {r.status_code} {r.text[:200]}")
                elif path.endswith(vid) and r.json()["id"] != vid:
                    failures.append(f"{path}: wrong body {r.text[:200]}")
    assert done.is_set()
    return failures, latencies, after


def test_master_killed_mid_stream_gives_callers_no_error_and_the_cache_comes_back(
    api_settings: Settings, cluster: RedisCluster, db: Pool
) -> None:
    settings = _cluster_settings(
        api_settings, cluster, rate_limit_per_minute=1_000_000, rate_limit_burst=100_000
    )
    deps = ApiDeps.open(settings, database_url=str(settings.database_url))
    cache = deps.cache
    # Several keys and videos, so the doomed master holds both cached rows and limits.
    owned: Owned = []

    def add_key(name: str) -> None:
        key, raw = make_key(db, name)
        video = make_video(db, key, status="ready")
        owned.append((key, {"Authorization": f"Bearer {raw}"}, str(video.id)))

    for n in range(6):
        add_key(f"k{n}")
    victim = cluster.port_of(cache.full_key("video", owned[0][2]))
    while not any(cluster.port_of(f"cf:rl:{k.id}") == victim for k, _, _ in owned):
        add_key("extra")
    names = [
        name
        for _, _, vid in owned
        if cluster.port_of(name := cache.full_key("video", vid)) == victim
    ]
    errors_before = _errors()
    try:
        with TestClient(create_app(deps), raise_server_exceptions=False) as client:
            for _, auth, vid in owned:  # warm: every row cached
                assert client.get(f"/v1/videos/{vid}", headers=auth).status_code == 200
            failures, latencies, after = _stream(
                client, owned, 3.0, 0.5, lambda: cluster.kill(victim)
            )
            assert after >= 10, after
            assert not failures, failures[:5]
            # The outage was really hit (errors counted, degraded to Postgres) and no request
            # stalled. 3 s, as for the hung master (tests/clipforge/test_redis_cluster.py): with
            # three test workers on two cores one request here took 2.16 s, the rest < 0.1 s.
            assert _errors() > errors_before
            assert max(latencies) < 3.0, max(latencies)
            ready = client.get("/ready")  # PINGs every master: one lost is a degraded cache
            assert ready.status_code == 200 and "redis" in ready.json()["degraded"], ready.text

            cluster.start(victim)  # same port and node config: its slots come back (empty)
            cluster.wait_ok()
            assert deps.redis is not None
            redis = deps.redis

            def cached_again() -> bool:  # the restarted master caches reads again
                for _, auth, vid in owned:
                    assert client.get(f"/v1/videos/{vid}", headers=auth).status_code == 200
                return all(redis.get(name) for name in names)

            # Breakers half-open 5 s after opening.
            wait_until(
                cached_again,
                timeout_s=20,
                interval_s=0.3,
                what="the cache to use the restarted master",
            )
            assert client.get("/ready").json()["checks"]["redis"] == "ok"

            # A hung master (accepts, never answers) costs socket timeouts, not errors: each
            # request waits at most a few REDIS_SOCKET_TIMEOUT_S before the breakers open.
            failures, latencies, after = _stream(
                client, owned, 2.5, 0.3, lambda: cluster.pause(victim)
            )
            cluster.resume(victim)
            assert after >= 3, after
            assert not failures, failures[:5]
            assert max(latencies) < 2.0, max(latencies)
    finally:
        if cluster.alive(victim):
            cluster.resume(victim)
        else:
            cluster.start(victim)
        deps.close()
