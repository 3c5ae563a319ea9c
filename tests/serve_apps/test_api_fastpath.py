"""The cheap request path of issue #13: cached API keys with a bounded revocation delay, and the
rate-limit check that also reads the request's cache keys in the same Redis round trip."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import redis.asyncio
from fastapi.testclient import TestClient

from clipforge.db.pool import Pool
from clipforge.db.repo.api_keys import revoke_api_key
from clipforge.ratelimit import RateLimiter
from clipforge.redis_client import create_redis
from clipforge.settings import Settings
from serve_apps.api.app import create_app
from serve_apps.api.deps import ApiDeps
from tests.utils.factories import make_key, make_video
from tests.utils.wait import wait_until


def test_revoked_key_is_refused_within_the_cache_ttl(api_deps: ApiDeps, db: Pool) -> None:
    settings = api_deps.settings.model_copy(update={"api_key_cache_ttl_s": 0.5})
    key, raw = make_key(db, "revoked")
    auth = {"Authorization": f"Bearer {raw}"}
    with TestClient(create_app(dataclasses.replace(api_deps, settings=settings))) as client:
        assert client.get("/v1/videos", headers=auth).status_code == 200
        with db.connection() as conn:
            assert revoke_api_key(conn, key_id=key.id)
        wait_until(  # the TTL, plus a margin for a slow machine
            lambda: client.get("/v1/videos", headers=auth).status_code != 200,
            timeout_s=0.5 + 0.3,
            what="revoked key still accepted after the TTL",
        )
        assert client.get("/v1/videos", headers=auth).status_code == 401


def test_cached_detail_is_read_with_the_rate_limit_check(api_deps: ApiDeps, db: Pool) -> None:
    key, raw = make_key(db, "fast")
    video = make_video(db, key)
    auth = {"Authorization": f"Bearer {raw}"}
    with TestClient(create_app(api_deps)) as client:
        first = client.get(f"/v1/videos/{video.id}", headers=auth)  # fills the cache
        assert first.status_code == 200
        assert client.get(f"/v1/videos/{video.id}", headers=auth).json() == first.json()
        # Another key gets a 404 from the prefetched value too (ownership is checked on it).
        _, other = make_key(db, "other")
        missing = client.get(f"/v1/videos/{video.id}", headers={"Authorization": f"Bearer {other}"})
        assert missing.status_code == 404


def test_acheck_limits_and_reads_in_one_script(settings: Settings, redis_url: str) -> None:
    prefix = f"cftest:acheck:{uuid.uuid4().hex[:8]}:"
    sync = create_redis(settings, redis_url)
    assert sync is not None
    sync.set(f"{prefix}value", b"cached")
    limiter = RateLimiter(sync, per_minute=60, burst=2, prefix=prefix)

    async def run() -> list[tuple[bool, list[bytes | None] | None]]:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            names = [f"{prefix}value", f"{prefix}missing"]
            out = []
            for _ in range(3):
                decision, values = await limiter.acheck(client, "k", get=names)
                out.append((decision.allowed, values))
            return out
        finally:
            await client.aclose()

    assert asyncio.run(run()) == [
        (True, [b"cached", None]),
        (True, [b"cached", None]),
        (False, None),  # refused: nothing read
    ]


def test_acheck_fails_open_without_redis() -> None:
    limiter = RateLimiter(None, per_minute=1, burst=1)
    decision, values = asyncio.run(limiter.acheck(None, "k", get=["x"]))
    assert decision.allowed and values is None
