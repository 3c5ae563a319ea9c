"""Cache-aside reads over Redis with TTLs, invalidated on every write.

A Redis outage never reaches the caller: lookups fall through to the loader (Postgres), with a
warning and a metric, and a circuit breaker skips Redis entirely while it is down so each
request does not pay a connection timeout.

Invalidation writes a short-lived tombstone instead of deleting the key. A reader that loaded
the old row just before a write stores its result with SET NX, which the tombstone blocks, so a
slow reader cannot put a stale value back for a whole TTL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from clipforge.metrics import CACHE_ERRORS, CACHE_REQUESTS
from clipforge.resilience import CircuitBreaker

log = logging.getLogger(__name__)
T = TypeVar("T")

# TTLs from the scale rules (seconds).
VIDEO_TTL_S = 5 * 60
CLIPS_TTL_S = 10 * 60
TRANSCRIPT_TTL_S = 30 * 60

_TOMBSTONE = b"\x00invalidated"
_TOMBSTONE_TTL_S = 5


class Cache:
    """Cache-aside helper; `client=None` disables caching (the embedded default)."""

    def __init__(self, client: redis.Redis | None, *, prefix: str = "cf:") -> None:
        self._client = client
        self._prefix = prefix
        self._breaker = CircuitBreaker("redis-cache", failure_threshold=3, reset_after_s=5.0)

    def _key(self, namespace: str, key: str) -> str:
        return f"{self._prefix}{namespace}:{key}"

    def _redis(self, op: str, fn: Callable[[redis.Redis], T]) -> T | None:
        """Run a Redis call; on any Redis failure log, count and return None."""
        client = self._client
        if client is None:
            return None
        try:
            return self._breaker.call(lambda: fn(client))
        except Exception as exc:  # redis errors, timeouts, CircuitOpen: all degrade the same way
            CACHE_ERRORS.labels(op=op).inc()
            log.warning(
                "redis unavailable; using the database", extra={"op": op, "error": repr(exc)}
            )
            return None

    def get_or_load(
        self,
        namespace: str,
        key: str,
        *,
        ttl_s: int,
        loader: Callable[[], Any],
    ) -> Any:
        """The cached JSON value, or `loader()` (stored for `ttl_s` unless None)."""
        full = self._key(namespace, key)
        raw = self._redis("get", lambda r: r.get(full))
        if raw is not None and raw != _TOMBSTONE:
            CACHE_REQUESTS.labels(namespace=namespace, result="hit").inc()
            return json.loads(raw)
        CACHE_REQUESTS.labels(namespace=namespace, result="miss").inc()
        value = loader()
        if value is not None and raw is None:
            payload = json.dumps(value, default=str)
            self._redis("set", lambda r: r.set(full, payload, ex=ttl_s, nx=True))
        return value

    def invalidate(self, namespace: str, *keys: str) -> None:
        """Drop cached values after a write (tombstones block stale refills for a few seconds)."""
        if not keys:
            return
        names = [self._key(namespace, k) for k in keys]

        def _write(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=False)
            for name in names:
                pipe.set(name, _TOMBSTONE, ex=_TOMBSTONE_TTL_S)
            pipe.execute()

        self._redis("invalidate", _write)
