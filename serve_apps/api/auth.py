"""Authentication and the per-key rate limit on the event loop, in at most one Redis round trip.

A request's key is looked up in a small in-process cache first (`KeyCache`), so Postgres sees
one query per key per `API_KEY_CACHE_TTL_S` per process instead of one per request; a revoked
key therefore keeps working for at most that long (10 s by default; 0 turns the cache off).
Unknown keys are never cached, so each wrong guess still counts against the caller's address.

The rate-limit script also reads the cache keys the route is about to read (`prefetch_keys`),
and hands them to `Cache.get_or_load` through `clipforge.cache.set_prefetched`: a cached detail
read costs one Redis round trip and no Postgres query. Database and Redis calls here use
asyncio clients (`LoopResources`), so nothing on this path blocks the event loop.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request

from clipforge.cache import set_prefetched
from clipforge.db.pool import AsyncPool, create_async_pool
from clipforge.db.repo.api_keys import ApiKey, authenticate_async, hash_key, well_formed
from clipforge.redis_client import AsyncRedisClient, RedisClient, create_async_redis
from clipforge.settings import Settings
from serve_apps.api.errors import Unauthorized

# Reads whose cache keys are fetched with the rate-limit check: path -> namespaces, in the order
# the service reads them (the video row first: its ownership check comes before anything else).
_PREFETCH = (
    (re.compile(r"^/v1/videos/([0-9A-Fa-f-]{32,36})$"), ("video",)),
    (re.compile(r"^/v1/videos/([0-9A-Fa-f-]{32,36})/clips$"), ("video", "clips")),
    (re.compile(r"^/v1/videos/([0-9A-Fa-f-]{32,36})/transcript$"), ("video", "transcript")),
)
# Connections of the per-loop asyncio pool (key lookups only; most are served from KeyCache).
ASYNC_POOL_SIZE = 4
_MAX_KEYS = 10_000


class KeyCache:
    """Active keys by digest for `ttl_s` seconds (bounded; oldest entries go first)."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._keys: dict[bytes, tuple[ApiKey, float]] = {}

    def get(self, digest: bytes) -> ApiKey | None:
        """The cached key, if looked up less than `ttl_s` ago."""
        hit = self._keys.get(digest)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, digest: bytes, key: ApiKey) -> None:
        """Remember an active key (no-op when the cache is off)."""
        if self._ttl_s <= 0:
            return
        self._keys.pop(digest, None)  # re-insert at the end: eviction order is by age
        self._keys[digest] = (key, time.monotonic() + self._ttl_s)
        while len(self._keys) > _MAX_KEYS:
            del self._keys[next(iter(self._keys))]


@dataclass(slots=True)
class _Loop:
    pool: AsyncPool | None = None
    clients: dict[int, AsyncRedisClient] = field(default_factory=dict)


class LoopResources:
    """Asyncio clients are bound to the event loop that created them: one set per loop.

    One process normally runs one loop; tests run several apps (each TestClient has its own
    loop) on one `ApiDeps`, which is why this is keyed by loop.
    """

    def __init__(self, settings: Settings, database_url: str, application_name: str) -> None:
        self._settings = settings
        self._url = database_url
        self._name = application_name
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop] = (
            weakref.WeakKeyDictionary()
        )

    def _current(self) -> _Loop:
        return self._loops.setdefault(asyncio.get_running_loop(), _Loop())

    async def pool(self) -> AsyncPool:
        """This loop's asyncio Postgres pool (opened on first use, empty until needed)."""
        state = self._current()
        if state.pool is None:
            pool = await create_async_pool(
                self._settings,
                self._url,
                application_name=self._name,
                max_size=ASYNC_POOL_SIZE,
                timeout_s=self._settings.api_db_pool_timeout_s,
            )
            if state.pool is None:
                state.pool = pool
            else:  # another request opened one meanwhile
                await pool.close()
        return state.pool

    def redis(self, sync_client: RedisClient | None) -> AsyncRedisClient | None:
        """An asyncio client to the same server or cluster, with the same timeouts, as
        `sync_client`."""
        if sync_client is None:
            return None
        clients = self._current().clients
        client = clients.get(id(sync_client))
        if client is None:
            client = clients[id(sync_client)] = create_async_redis(self._settings, sync_client)
        return client

    async def aclose(self) -> None:
        """Close this loop's clients (the app's lifespan calls this on shutdown)."""
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is None:
            return
        if state.pool is not None:
            await state.pool.close()
        for client in state.clients.values():
            await client.aclose()


def raw_key_of(request: Request) -> str:
    """The bearer token; 401 when there is none."""
    scheme, _, raw = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    return raw.strip()


def cache_keys_for(path: str, method: str, full_key: Callable[[str, str], str]) -> list[str]:
    """Redis keys the route at `path` reads first, to fetch with the rate-limit check."""
    if method != "GET":
        return []
    for pattern, namespaces in _PREFETCH:
        match = pattern.match(path)
        if match is None:
            continue
        try:
            video_id = str(uuid.UUID(match.group(1)))
        except ValueError:  # the route answers 422 for it; nothing to read ahead
            return []
        return [full_key(ns, video_id) for ns in namespaces]
    return []


async def lookup_key(
    resources: LoopResources, keys: KeyCache, raw_key: str
) -> tuple[ApiKey | None, bytes]:
    """The active key for `raw_key` (from `keys`, else Postgres), with its digest."""
    digest = hash_key(raw_key)
    cached = keys.get(digest)
    if cached is not None:
        return cached, digest
    if not well_formed(raw_key):
        return None, digest
    pool = await resources.pool()
    async with pool.connection() as conn:
        key = await authenticate_async(conn, digest=digest)
    if key is not None:
        keys.put(digest, key)
    return key, digest


def remember_prefetch(names: list[str], values: list[bytes | None] | None) -> None:
    """Hand the values read with the rate-limit check to the cache for this request."""
    if names and values is not None:
        set_prefetched(dict(zip(names, values, strict=True)))
