"""Cache-aside over a real Redis: hits, invalidation on write, and a Redis outage."""

from __future__ import annotations

import uuid

import redis

from clipforge.cache import VIDEO_TTL_S, Cache
from clipforge.db.pool import Pool
from clipforge.db.repo.videos import get_video, update_video
from clipforge.metrics import CACHE_ERRORS
from clipforge.redis_client import create_redis
from clipforge.settings import Settings
from tests.utils.factories import make_video
from tests.utils.servers import redis_server


def _cached_video(
    cache: Cache, pool: Pool, video_id: uuid.UUID, loads: list[int]
) -> dict[str, object]:
    def load() -> dict[str, object] | None:
        loads.append(1)
        with pool.connection() as conn:
            video = get_video(conn, video_id=video_id)
        return video.to_json() if video else None

    value = cache.get_or_load("video", str(video_id), ttl_s=VIDEO_TTL_S, loader=load)
    assert isinstance(value, dict)
    return value


def test_hit_after_miss_and_ttl_set(
    db: Pool, settings: Settings, redis_url: str, redis_prefix: str
) -> None:
    client = create_redis(settings, redis_url)
    assert client is not None
    cache = Cache(client, prefix=redis_prefix)
    video = make_video(db)
    loads: list[int] = []
    first = _cached_video(cache, db, video.id, loads)
    second = _cached_video(cache, db, video.id, loads)
    assert first == second and first["id"] == str(video.id)
    assert len(loads) == 1
    ttl = client.ttl(f"{redis_prefix}video:{video.id}")
    assert isinstance(ttl, int) and 0 < ttl <= VIDEO_TTL_S


def test_write_invalidates_and_blocks_stale_refill(
    db: Pool, settings: Settings, redis_url: str, redis_prefix: str
) -> None:
    cache = Cache(create_redis(settings, redis_url), prefix=redis_prefix)
    video = make_video(db)
    loads: list[int] = []
    assert _cached_video(cache, db, video.id, loads)["status"] == "pending"
    with db.connection() as conn:
        update_video(conn, video_id=video.id, status="ready")
    cache.invalidate("video", str(video.id))
    assert _cached_video(cache, db, video.id, loads)["status"] == "ready"
    # A reader that loaded the old row before the write cannot store it over the tombstone.
    stale = {"id": str(video.id), "status": "pending"}
    assert cache.get_or_load("video", str(video.id), ttl_s=60, loader=lambda: stale) == stale
    assert _cached_video(cache, db, video.id, loads)["status"] == "ready"


def test_redis_outage_serves_the_database_value(db: Pool, settings: Settings) -> None:
    video = make_video(db)
    with redis_server() as (url, proc):
        cache = Cache(create_redis(settings, url), prefix="outage:")
        loads: list[int] = []
        assert _cached_video(cache, db, video.id, loads)["status"] == "pending"
        proc.kill()  # Redis goes away mid-test
        proc.wait()
        with db.connection() as conn:
            update_video(conn, video_id=video.id, status="ready")
        errors_before = CACHE_ERRORS.labels(op="get")._value.get()
        cache.invalidate("video", str(video.id))  # must not raise either
        for _ in range(5):  # enough calls to open the breaker; every one still answers
            assert _cached_video(cache, db, video.id, loads)["status"] == "ready"
        assert CACHE_ERRORS.labels(op="get")._value.get() > errors_before


def test_disabled_cache_always_loads(db: Pool) -> None:
    cache = Cache(None)
    video = make_video(db)
    loads: list[int] = []
    _cached_video(cache, db, video.id, loads)
    _cached_video(cache, db, video.id, loads)
    assert len(loads) == 2


def test_unreachable_redis_never_raises(settings: Settings) -> None:
    from tests.utils.servers import free_port

    client = create_redis(settings, f"redis://127.0.0.1:{free_port()}/0")
    cache = Cache(client)
    assert cache.get_or_load("video", "x", ttl_s=5, loader=lambda: {"a": 1}) == {"a": 1}
    assert isinstance(client, redis.Redis)
