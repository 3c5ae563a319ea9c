"""The cache and the rate limiter on a real 3-master Redis Cluster (tests/utils/redis_cluster.py).

Settings parsing, one slot per object's keys, per-master degradation (a lost master sends only
its keys to the loader, at once, while the others keep hitting), the asyncio limit+read-ahead,
and a client that starts before any node answers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from clipforge.cache import Cache
from clipforge.errors import ConfigError
from clipforge.ratelimit import RateLimiter
from clipforge.redis_client import (
    LazyCluster,
    cluster_seeds,
    create_async_redis,
    create_redis,
    node_of,
)
from clipforge.settings import Settings, load_settings
from tests.utils.redis_cluster import RedisCluster, redis_cluster
from tests.utils.wait import wait_until


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """One cluster for the module; a test that kills a master starts it again."""
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as running:
        yield running


def _on(settings: Settings, cluster: RedisCluster) -> Settings:
    return settings.model_copy(update={"redis_url": None, "redis_cluster_url": cluster.url})


def test_cluster_url_setting_and_seed_parsing() -> None:
    url = "redis://u:p%40ss@10.0.0.1:7000, rediss://10.0.0.2:7001"
    assert load_settings(redis_url="", redis_cluster_url=url).redis_cluster_url == url
    seeds, options = cluster_seeds(url)
    assert seeds == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert options == {"username": "u", "password": "p@ss"}
    with pytest.raises(ConfigError, match="REDIS_CLUSTER_URL"):
        load_settings(redis_url="", redis_cluster_url="http://10.0.0.1:7000")
    with pytest.raises(ConfigError, match="not both"):
        load_settings(redis_url="redis://a:1/0", redis_cluster_url="redis://b:2")


def test_cache_on_cluster_tags_keys_and_invalidates(
    settings: Settings, cluster: RedisCluster, redis_prefix: str
) -> None:
    client = create_redis(_on(settings, cluster))
    assert isinstance(client, LazyCluster)
    cache = Cache(client, prefix=redis_prefix)
    video_id = str(uuid.uuid4())
    names = [cache.full_key(ns, video_id) for ns in ("video", "clips", "transcript")]
    assert names[0] == f"{redis_prefix}video:{{{video_id}}}"
    assert len({key_slot(n.encode()) for n in names}) == 1  # one slot: one MGET reads all
    loads: list[int] = []
    row = {"id": video_id, "status": "ready"}

    def load() -> dict[str, str]:
        loads.append(1)
        return dict(row)

    assert cache.get_or_load("video", video_id, ttl_s=60, loader=load)["status"] == "ready"
    assert cache.get_or_load("video", video_id, ttl_s=60, loader=load)["status"] == "ready"
    assert len(loads) == 1
    row["status"] = "failed"
    cache.invalidate("video", video_id)
    assert cache.get_or_load("video", video_id, ttl_s=60, loader=load)["status"] == "failed"
    assert len(loads) == 2
    client.close()


def test_hung_master_degrades_only_its_keys_within_the_bound_and_recovers(
    settings: Settings, cluster: RedisCluster, redis_prefix: str
) -> None:
    client = create_redis(_on(settings, cluster))
    assert client is not None
    cache = Cache(client, prefix=redis_prefix)
    ids = [str(uuid.uuid4()) for _ in range(30)]
    port = {i: cluster.port_of(cache.full_key("video", i)) for i in ids}
    victim = port[ids[0]]
    lost = [i for i in ids if port[i] == victim]
    assert 0 < len(lost) < len(ids)
    loads: list[str] = []

    def read(i: str) -> object:
        def load() -> dict[str, str]:
            loads.append(i)
            return {"id": i, "status": "ready"}

        return cache.get_or_load("video", i, ttl_s=60, loader=load)

    for i in ids:
        read(i)  # all cached
    loads.clear()
    cluster.pause(victim)  # accepts connections, answers nothing: every call to it times out
    try:
        started = time.monotonic()
        for _ in range(2):
            for i in ids:
                assert read(i) == {"id": i, "status": "ready"}
        elapsed = time.monotonic() - started
        # Only the hung master's keys went to the loader (the others still hit), and its
        # breaker opened after 3 socket timeouts (0.5 s each). redis-py's default of 10
        # retries would spend 5.5 s on the first read alone.
        assert set(loads) == set(lost)
        assert elapsed < 3.0, elapsed
        cache.invalidate("video", *ids)
        assert cache.pending_invalidations == len(lost)  # queued, not dropped
    finally:
        cluster.resume(victim)
    # The breaker half-opens 5 s after it opened.
    wait_until(
        lambda: not cache.pending_invalidations,
        timeout_s=20,
        what="queued invalidations never delivered",
    )
    # Delivered to the master that hung: its keys hold tombstones now.
    assert {client.get(cache.full_key("video", i)) for i in lost} == {b"\x00invalidated"}
    fresh = next(
        i
        for i in (str(uuid.uuid4()) for _ in range(100))
        if cluster.port_of(cache.full_key("video", i)) == victim
    )
    loads.clear()
    read(fresh)
    read(fresh)
    assert loads == [fresh]  # cached there again
    client.close()


def test_limiter_on_cluster_sync_and_async(
    settings: Settings, cluster: RedisCluster, redis_prefix: str
) -> None:
    cluster_settings = _on(settings, cluster)
    client = create_redis(cluster_settings)
    assert client is not None
    limiter = RateLimiter(client, per_minute=60, burst=2, prefix=redis_prefix)
    cache = Cache(client, prefix=redis_prefix)
    assert [limiter.check("a").allowed for _ in range(3)] == [True, True, False]
    video_id = str(uuid.uuid4())
    cache.get_or_load("video", video_id, ttl_s=60, loader=lambda: {"id": video_id})
    names = [cache.full_key("video", video_id), cache.full_key("clips", video_id)]

    async def run() -> list[tuple[bool, list[bytes | None] | None]]:
        aio = create_async_redis(cluster_settings, client)
        out = []
        for _ in range(3):
            decision, values = await limiter.acheck(aio, "b", get=names)
            out.append((decision.allowed, values))
        await aio.aclose()
        return out

    results = asyncio.run(run())
    assert [allowed for allowed, _ in results] == [True, True, False]
    assert results[0][1] == [b'{"id":"' + video_id.encode() + b'"}', None]
    assert results[2][1] is None  # refused: nothing read ahead
    # The limit key of "b" is one key: any slot, the script touches only it.
    assert node_of(client, f"{redis_prefix}b") != ""
    client.close()


def test_client_starts_before_the_cluster_and_finds_it_later(
    settings: Settings, tmp_path: Path
) -> None:
    later = RedisCluster(tmp_path)
    client = create_redis(_on(settings, later))
    assert isinstance(client, LazyCluster)
    cache = Cache(client)
    started = time.monotonic()
    assert cache.get_or_load("video", "x", ttl_s=5, loader=lambda: {"a": 1}) == {"a": 1}
    assert time.monotonic() - started < 1.0
    with pytest.raises(redis.ConnectionError):
        client.get("x")
    try:
        later.create()

        def set_x() -> bool:
            try:
                return bool(client.set("x", "1"))
            except redis.ConnectionError:
                return False

        wait_until(set_x, timeout_s=10, interval_s=0.2, what="the new node never took a write")
        assert client.get("x") == b"1"
    finally:
        client.close()
        later.close()
