"""Read replicas end to end: the real API app on a primary and a `pg_basebackup -R` replica.

The replica is proven to serve reads by making it differ from the primary (replay paused, then
the primary changed behind the API's back): an answer with the old state can only have come
from the replica. Migrations run on the primary only; the replica gets the schema by streaming.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from redis.backoff import NoBackoff
from redis.retry import Retry

from clipforge import cache
from clipforge.db.migrate import migrate
from clipforge.db.pool import Pool, create_pool
from clipforge.db.replicas import ReplicaRouter
from clipforge.db.repo.api_keys import ApiKey
from clipforge.db.write_marks import UNKNOWN_LSN, WriteMarks
from clipforge.errors import ConfigError
from clipforge.queue import QueuePolicy, enqueue
from clipforge.settings import Settings
from serve_apps.api.app import create_app
from serve_apps.api.auth import ASYNC_POOL_SIZE
from serve_apps.api.deps import CACHE_FILL_MAX_STALENESS_S, ApiDeps
from tests.utils.factories import make_key, make_video
from tests.utils.pg_replica import ReplicaPair
from tests.utils.servers import free_port
from tests.utils.wait import wait_until

PUBLIC_URL = "https://93.184.216.34/talk.mp4"  # a literal public address: no DNS needed

AppFactory = Callable[..., tuple[ApiDeps, TestClient]]


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicaPair]:
    """A primary (migrated) and its streaming replica, for this module."""
    servers = ReplicaPair()
    try:
        migrate(servers.primary_url)
        servers.wait_caught_up()
        yield servers
    finally:
        servers.close()


@pytest.fixture(scope="module")
def primary(pair: ReplicaPair, api_settings: Settings) -> Iterator[Pool]:
    """A pool on the primary, for arranging rows behind the API's back."""
    with create_pool(api_settings, pair.primary_url, application_name="tests") as pool:
        yield pool


@pytest.fixture()
def make_app(pair: ReplicaPair, api_settings: Settings) -> Iterator[AppFactory]:
    """Build API apps on the pair (each an `ApiDeps` like one API process); closed afterwards."""
    opened: list[tuple[ApiDeps, TestClient]] = []

    def build(*, max_lag_s: float = 60.0, prefix: str | None = None) -> tuple[ApiDeps, TestClient]:
        settings = api_settings.model_copy(
            update={
                "database_url": pair.primary_url,
                "database_replica_url": pair.replica_url,
                "db_replica_max_lag_s": max_lag_s,
                "db_replica_check_interval_s": 0.1,
            }
        )
        deps = ApiDeps.open(
            settings,
            database_url=pair.primary_url,
            redis_prefix=prefix or f"cftest:{uuid.uuid4().hex[:8]}:",
        )
        client = TestClient(create_app(deps), raise_server_exceptions=False)
        client.__enter__()
        opened.append((deps, client))
        return deps, client

    yield build
    for deps, client in opened:
        client.__exit__(None, None, None)
        deps.close()


def _key(pool: Pool) -> tuple[ApiKey, dict[str, str]]:
    key, raw = make_key(pool, "replica-test")
    return key, {"Authorization": f"Bearer {raw}"}


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _reads(target: str, reason: str) -> float:
    return _sample("clipforge_db_reads_total", target=target, reason=reason)


def _primary_reads() -> float:
    return sum(
        s.value
        for metric in REGISTRY.collect()
        if metric.name == "clipforge_db_reads"
        for s in metric.samples
        if s.name.endswith("_total") and s.labels.get("target") == "primary"
    )


def _skipped(replica: str) -> float:
    """Every skip of `replica`, whatever the reason."""
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "clipforge_db_replica_skipped":
            for s in metric.samples:
                if s.name.endswith("_total") and s.labels.get("replica") == replica:
                    total += s.value
    return total


def _caught_up(pair: ReplicaPair, deps: ApiDeps) -> str:
    """Wait until the replica has everything and the router knows it; the replica's name."""
    pair.wait_caught_up()
    replica = deps.router.replicas[0]
    _wait(lambda: deps.router.check(replica).lag_s == 0.0)
    return replica.name


def _wait(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    wait_until(condition, timeout_s=timeout_s)


def _warm(client: TestClient, headers: dict[str, str], replica: str) -> None:
    """Read until one read is served by `replica`: its pool then holds an open connection.

    The router gives a replica connection only `REPLICA_CHECKOUT_S` (0.1 s) before it sends
    the read to the primary instead, and on a busy machine opening the first connection can
    take longer than that. That fallback is correct behaviour, so tests that count replica
    reads warm the pool first rather than assume the first read lands there.
    """

    def served() -> bool:
        before = _reads(replica, "ok")
        assert client.get("/v1/videos", headers=headers).status_code == 200
        return _reads(replica, "ok") > before

    _wait(served)


def test_settings_and_connection_budget(api_settings: Settings, pair: ReplicaPair) -> None:
    # The cache-fill bound must stay under the cache's tombstone, or a refill could be stale.
    assert CACHE_FILL_MAX_STALENESS_S < cache._TOMBSTONE_TTL_S
    two = f"{pair.replica_url}, postgres://u@h1,h2:5433/db"
    listed = api_settings.model_copy(update={"database_replica_url": two})
    assert listed.database_replica_urls[1] == "postgres://u@h1,h2:5433/db"
    # Three replicas next to a 10-connection primary pool and the asyncio pool: over 19.
    three = ",".join([pair.replica_url] * 3)
    crowded = api_settings.model_copy(update={"database_replica_url": three})
    with (
        create_pool(crowded, pair.primary_url, max_size=10) as pool,
        pytest.raises(ConfigError, match="DB_POOL_MAX_SIZE"),
    ):
        ReplicaRouter.open(crowded, pool, other_connections=ASYNC_POOL_SIZE)


def test_write_marks_keep_the_highest_position_and_fail_safe(redis_url: str) -> None:
    prefix = f"cftest:{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(redis_url)
    try:
        first, second = (WriteMarks(client, prefix=prefix, window_s=5) for _ in range(2))
        first.record("k", 1000)
        second.record("k", 400)  # a slower process's older position never lowers the mark
        assert WriteMarks(client, prefix=prefix, window_s=5).floor("k") == 1000
        assert 0 < client.pttl(f"{prefix}ryw:k") <= 5000
        assert first.floor("other") is None
    finally:
        client.delete(f"{prefix}ryw:k")
        client.close()
    # Redis unreachable: the writer's own process still knows; others go to the primary.
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    marks = WriteMarks(dead, prefix=prefix, window_s=5)
    marks.record("k", 7)  # logged, not raised
    assert marks.floor("k") == UNKNOWN_LSN


def test_list_and_detail_reads_are_served_by_the_replica(
    pair: ReplicaPair, primary: Pool, make_app: AppFactory
) -> None:
    deps, client = make_app()
    replica = deps.router.replicas[0]
    # One process stays under 20 connections: primary pool + asyncio pool + replica pool +
    # one check connection to each server.
    assert deps.pool.max_size + ASYNC_POOL_SIZE + replica.pool.max_size + 2 < 20
    key, headers = _key(primary)
    video = make_video(primary, key)
    with primary.connection() as conn:
        job = enqueue(conn, QueuePolicy.defaults(), kind="import", payload={}, video_id=video.id)
    name = _caught_up(pair, deps)
    _warm(client, headers, name)
    before = _reads(name, "ok")
    assert client.get(f"/v1/videos/{video.id}", headers=headers).status_code == 200  # cache fill
    assert client.get("/v1/videos", headers=headers).json()["items"][0]["id"] == str(video.id)
    assert client.get(f"/v1/jobs/{job.id}", headers=headers).json()["last_error"] is None
    assert _reads(name, "ok") - before == 3
    with psycopg.connect(pair.replica_url) as conn:
        apps = {r[0] for r in conn.execute("SELECT application_name FROM pg_stat_activity")}
    assert "clipforge-api-replica-0" in apps

    # Proof by difference: the replica stands still while the primary moves on.
    pair.pause_replay()
    try:
        newer = make_video(primary, key)
        with primary.connection() as conn:
            conn.execute("UPDATE jobs SET last_error = 'changed' WHERE id = %s", (job.id,))
        listed = client.get("/v1/videos", headers=headers).json()["items"]
        assert [v["id"] for v in listed] == [str(video.id)]  # not `newer`: the replica's view
        assert client.get(f"/v1/jobs/{job.id}", headers=headers).json()["last_error"] is None
        with primary.connection() as conn:
            row = conn.execute("SELECT count(*) AS n FROM videos WHERE id = %s", (newer.id,))
            assert row.fetchone() == {"n": 1}
    finally:
        pair.resume_replay()
    _caught_up(pair, deps)
    listed = client.get("/v1/videos", headers=headers).json()["items"]
    assert {v["id"] for v in listed} == {str(video.id), str(newer.id)}


def test_a_write_is_read_back_at_once_on_any_api_process(
    pair: ReplicaPair, primary: Pool, make_app: AppFactory
) -> None:
    prefix = f"cftest:{uuid.uuid4().hex[:8]}:"
    deps_a, client_a = make_app(prefix=prefix)  # two API processes sharing Redis
    _deps_b, client_b = make_app(prefix=prefix)
    _key_a, headers = _key(primary)
    _bystander, others = _key(primary)
    name = _caught_up(pair, deps_a)
    _warm(client_b, others, name)
    pair.pause_replay()  # without read-your-writes the replica could not show the new video
    try:
        created = client_a.post("/v1/videos", json={"source_url": PUBLIC_URL}, headers=headers)
        assert created.status_code == 202
        video_id = created.json()["video"]["id"]
        ryw, on_primary = _reads("primary", "read_your_writes"), _primary_reads()
        assert client_b.get(f"/v1/videos/{video_id}", headers=headers).status_code == 200
        listed = client_b.get("/v1/videos", headers=headers).json()["items"]
        assert [v["id"] for v in listed] == [video_id]
        # Both on the primary; the list for the mark (the detail's cache fill may already be
        # refused the paused replica for its staleness alone).
        assert _primary_reads() - on_primary == 2
        assert _reads("primary", "read_your_writes") - ryw >= 1
        # A key that wrote nothing still reads from the (paused) replica.
        before = _reads(name, "ok")
        assert client_b.get("/v1/videos", headers=others).json()["items"] == []
        assert _reads(name, "ok") - before == 1
        # A delete through B is seen by the next read through A.
        assert client_b.delete(f"/v1/videos/{video_id}", headers=headers).status_code == 204
        assert client_a.get(f"/v1/videos/{video_id}", headers=headers).status_code == 404
    finally:
        pair.resume_replay()
    # Once the replica has replayed past the key's last write, its reads go back to it, long
    # before the 30 s window ends.
    pair.wait_caught_up()

    def back_on_replica() -> bool:
        before = _reads(name, "ok")
        assert client_a.get("/v1/videos", headers=headers).json()["items"] == []
        return _reads(name, "ok") > before

    _wait(back_on_replica)


def test_reads_survive_a_stopped_replica(
    pair: ReplicaPair, primary: Pool, make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    deps, client = make_app()
    key, headers = _key(primary)
    video = make_video(primary, key)
    name = _caught_up(pair, deps)
    replica = deps.router.replicas[0]
    _warm(client, headers, name)  # the replica's pool now holds a connection the stop will break
    assert pair.replica is not None
    caplog.set_level(logging.WARNING, logger="clipforge.db.replicas")
    pair.replica.stop()
    try:
        skipped = _skipped(name)
        for _ in range(3):  # before and after the health check notices
            assert client.get(f"/v1/videos/{video.id}", headers=headers).status_code == 200
            assert client.get("/v1/videos", headers=headers).json()["items"][0]["id"] == str(
                video.id
            )
        _wait(lambda: replica.state.problem == "down")
        fallback = _reads("primary", "no_usable_replica")
        assert client.get("/v1/videos", headers=headers).status_code == 200
        assert _reads("primary", "no_usable_replica") - fallback == 1
        assert _skipped(name) > skipped
        assert _sample("clipforge_db_replica_usable", replica=name) == 0
        skips = [r for r in caplog.records if r.getMessage().startswith("read replica skipped")]
        assert skips and skips[0].__dict__["reason"] == "down"
    finally:
        pair.replica.start()
    # Back in use once it answers again.
    _wait(lambda: replica.state.problem is None)
    _warm(client, headers, name)


def test_paused_replay_falls_back_once_lag_exceeds_the_bound(
    pair: ReplicaPair, primary: Pool, make_app: AppFactory
) -> None:
    deps, client = make_app(max_lag_s=0.5)
    key, headers = _key(primary)
    make_video(primary, key)
    name = _caught_up(pair, deps)
    replica = deps.router.replicas[0]
    pair.pause_replay()
    try:
        newer = make_video(primary, key)  # not replayed: the replica now lags
        _wait(lambda: replica.state.lag_s > 0.5)
        skipped = _sample("clipforge_db_replica_skipped_total", replica=name, reason="lag_seconds")
        listed = client.get("/v1/videos", headers=headers).json()["items"]
        assert listed[0]["id"] == str(newer.id)  # the primary's answer
        assert (
            _sample("clipforge_db_replica_skipped_total", replica=name, reason="lag_seconds")
            == skipped + 1
        )
        assert _sample("clipforge_db_replica_lag_seconds", replica=name) > 0.5
        assert _sample("clipforge_db_replica_lag_bytes", replica=name) > 0
    finally:
        pair.resume_replay()
    _wait(lambda: replica.state.lag_s == 0.0)
    _warm(client, headers, name)
