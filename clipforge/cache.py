"""Cache-aside reads over Redis with TTLs, invalidated on every write.

A Redis outage never reaches the caller: lookups fall through to the loader (Postgres), with a
warning and a metric, and a circuit breaker skips Redis entirely while it is down so each
request does not pay a connection timeout.

Invalidation writes a short-lived tombstone instead of deleting the key. A reader that loaded
the old row just before a write stores its result with SET NX, which the tombstone blocks, so a
slow reader cannot put a stale value back for a whole TTL.

Staleness when an invalidation is lost (the writer cannot reach Redis, e.g. a worker on the far
side of a network partition while the API still reads the cache) is bounded two ways:
- Values that describe work in progress (a `status` such as `pending` or `importing`, or an
  empty list: "no clips yet") are stored for at most `TRANSIENT_TTL_S` (5 s). These are the
  values a worker is about to change, so a missed invalidation shows an old state for at most
  that long. Settled values keep their long TTL (5-30 min), so the cache still absorbs reads.
- A failed invalidation is not dropped: it is queued in the writer and retried in the
  background until Redis answers, so a settled value is fresh again within about
  `_RETRY_MAX_S` + the breaker's reset time of the partition healing (bounded by its TTL).
The API reads the cache keys of a request in the same Redis round trip as its rate-limit check
(`RateLimiter.acheck`); `prefetched` hands those values to `get_or_load`, which then skips its
own GET. Values are serialised with orjson (several times faster than `json` on these rows).
Per-row version checks against Postgres were rejected: for a video row the check costs the
same primary-key read the cache exists to avoid.

On a Redis Cluster every key of one object carries the object's id as a hash tag
(`cf:video:{<id>}`, `cf:clips:{<id>}`), so a request's read-ahead of several of them is one
single-slot command, and the circuit breaker is per master: losing one master sends only the
keys it served to Postgres, for `reset_after_s` at a time, while the others keep hitting.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson
from redis.exceptions import MaxConnectionsError

from clipforge.metrics import CACHE_ERRORS, CACHE_INVALIDATIONS_PENDING, CACHE_REQUESTS
from clipforge.redis_client import RedisClient, is_cluster, node_of, tag
from clipforge.resilience import CircuitBreaker

log = logging.getLogger(__name__)
T = TypeVar("T")

# TTLs from the scale rules (seconds).
VIDEO_TTL_S = 5 * 60
CLIPS_TTL_S = 10 * 60
TRANSCRIPT_TTL_S = 30 * 60
# Longest a value describing work in progress is cached: the bound on a stale in-progress read.
TRANSIENT_TTL_S = 5

# Statuses a worker moves on from by itself (videos, exports, jobs, webhook deliveries).
TRANSIENT_STATUSES = frozenset(
    {
        "pending",
        "uploading",
        "importing",
        "transcribing",
        "detecting",
        "deleting",
        "queued",
        "rendering",
        "running",
    }
)

_TOMBSTONE = b"\x00invalidated"
# Read-ahead value meaning "the master holding this key just failed (or is being skipped)":
# the request reads Postgres without asking Redis again, so a hung master costs a request one
# socket timeout, not one per cached read. Never stored in Redis.
UNREACHABLE = b"\x00unreachable"
_TOMBSTONE_TTL_S = 5
# Failed invalidations: retried every _RETRY_MIN_S, backing off to _RETRY_MAX_S; at most
# _MAX_PENDING keys are kept (beyond that the oldest rely on their TTL alone).
_RETRY_MIN_S = 0.5
_RETRY_MAX_S = 5.0
_MAX_PENDING = 10_000


# Full key -> raw value (None: missing) already read from Redis for the current request; a
# context variable so it follows the request into the threadpool and never leaks to another.
_PREFETCHED: contextvars.ContextVar[Mapping[str, bytes | None] | None] = contextvars.ContextVar(
    "cache_prefetched", default=None
)
_DUMP_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


@contextmanager
def prefetched(values: Mapping[str, bytes | None]) -> Iterator[None]:
    """Let `get_or_load` use `values` (read in another round trip) instead of a GET."""
    token = _PREFETCHED.set(values)
    try:
        yield
    finally:
        _PREFETCHED.reset(token)


def set_prefetched(values: Mapping[str, bytes | None]) -> None:
    """`prefetched` for the rest of the current context (an asyncio task: one request)."""
    _PREFETCHED.set(values)


def dumps(value: Any) -> bytes:
    """JSON as the cache stores it (datetimes and other unknown types as `str()`)."""
    return orjson.dumps(value, default=str, option=_DUMP_OPTIONS)


def is_transient(value: Any) -> bool:
    """Whether a cached value describes work in progress (and so gets `TRANSIENT_TTL_S`)."""
    if isinstance(value, dict):
        return value.get("status") in TRANSIENT_STATUSES
    return isinstance(value, list) and not value


class Cache:
    """Cache-aside helper; `client=None` disables caching (the embedded default)."""

    def __init__(
        self,
        client: RedisClient | None,
        *,
        prefix: str = "cf:",
        transient_ttl_s: int = TRANSIENT_TTL_S,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._transient_ttl_s = transient_ttl_s
        self._cluster = is_cluster(client)
        # One breaker per master ("" for a single server). A pool with every connection busy
        # is this process's load, not an outage: it degrades that call but trips nothing.
        self._breakers: dict[str, CircuitBreaker] = {}
        self._breakers_lock = threading.Lock()
        if not self._cluster:
            self._breaker("")  # one server: its breaker (and its gauge) exist from the start
        # Key -> sequence number of its latest failed invalidation. Insertion-ordered, so the
        # oldest key is dropped first when full; the number tells a retry whether a newer
        # failure of the same key came in while it was writing (then the key stays queued).
        self._pending: dict[str, int] = {}
        self._seq = 0
        self._pending_lock = threading.Lock()
        self._retrier: threading.Thread | None = None

    def _key(self, namespace: str, key: str) -> str:
        return f"{self._prefix}{namespace}:{tag(key, cluster=self._cluster)}"

    def _breaker(self, node: str) -> CircuitBreaker:
        with self._breakers_lock:
            breaker = self._breakers.get(node)
            if breaker is None:
                breaker = self._breakers[node] = CircuitBreaker(
                    f"redis-cache:{node}" if node else "redis-cache",
                    failure_threshold=3,
                    reset_after_s=5.0,
                    is_failure=lambda exc: not isinstance(exc, MaxConnectionsError),
                )
            return breaker

    def full_key(self, namespace: str, key: str) -> str:
        """The Redis key of (`namespace`, `key`), for reading it ahead (see `prefetched`)."""
        return self._key(namespace, key)

    @property
    def client(self) -> RedisClient | None:
        """The Redis client, or None when caching is off."""
        return self._client

    def peek(self, namespace: str, key: str) -> Any:
        """The value read ahead for this request, if it was a hit; None otherwise (no I/O)."""
        ahead = _PREFETCHED.get()
        raw = ahead.get(self._key(namespace, key)) if ahead is not None else None
        if raw is None or raw in (_TOMBSTONE, UNREACHABLE):
            return None
        CACHE_REQUESTS.labels(namespace=namespace, result="hit").inc()
        return orjson.loads(raw)

    def _redis(self, op: str, key: str, fn: Callable[[RedisClient], T]) -> T | None:
        """Run a Redis call about `key`; on any Redis failure log, count and return None."""
        return self._attempt(op, key, fn)[1]

    def _attempt(self, op: str, key: str, fn: Callable[[RedisClient], T]) -> tuple[bool, T | None]:
        """`_redis`, also saying whether Redis answered (False: failed, degraded)."""
        client = self._client
        if client is None:
            return False, None
        try:
            return True, self._breaker(node_of(client, key)).call(lambda: fn(client))
        except Exception as exc:  # redis errors, timeouts, CircuitOpen: all degrade the same way
            CACHE_ERRORS.labels(op=op).inc()
            log.warning(
                "redis unavailable; using the database", extra={"op": op, "error": repr(exc)}
            )
            return False, None

    def get_or_load(
        self,
        namespace: str,
        key: str,
        *,
        ttl_s: int,
        loader: Callable[[], Any],
    ) -> Any:
        """The cached JSON value, or `loader()` (stored for `ttl_s` unless None).

        Values describing work in progress are stored for at most the transient TTL.
        """
        full = self._key(namespace, key)
        ahead = _PREFETCHED.get()
        raw: bytes | str | None
        answered = True
        if ahead is not None and full in ahead:
            raw = ahead[full]
            if raw == UNREACHABLE:
                answered, raw = False, None
        else:
            answered, raw = self._attempt("get", full, lambda r: r.get(full))
        if raw is not None and raw != _TOMBSTONE:
            CACHE_REQUESTS.labels(namespace=namespace, result="hit").inc()
            return orjson.loads(raw)
        CACHE_REQUESTS.labels(namespace=namespace, result="miss").inc()
        value = loader()
        # After a failed GET the SET would most likely wait out another timeout: skip it.
        if value is not None and raw is None and answered:
            payload = dumps(value)
            ttl = min(ttl_s, self._transient_ttl_s) if is_transient(value) else ttl_s
            self._redis("set", full, lambda r: r.set(full, payload, ex=ttl, nx=True))
        return value

    def invalidate(self, namespace: str, *keys: str) -> None:
        """Drop cached values after a write (tombstones block stale refills for a few seconds).

        If Redis cannot be reached the invalidation is queued and retried in the background
        until it lands; it is never silently dropped.
        """
        if not keys or self._client is None:
            return
        names = [self._key(namespace, k) for k in keys]
        failed = self._tombstone(names)
        if failed:
            self._queue(failed)

    @property
    def pending_invalidations(self) -> int:
        """Invalidations waiting for Redis to be reachable again."""
        with self._pending_lock:
            return len(self._pending)

    def _tombstone(self, names: list[str]) -> list[str]:
        """Write tombstones for `names`, one pipeline per master; the names that failed."""
        by_node: dict[str, list[str]] = {}
        for name in names:
            by_node.setdefault(node_of(self._client, name), []).append(name)
        failed: list[str] = []
        for group in by_node.values():

            def _write(r: RedisClient, group: list[str] = group) -> bool:
                pipe = r.pipeline(transaction=False)
                for name in group:
                    pipe.set(name, _TOMBSTONE, ex=_TOMBSTONE_TTL_S)
                pipe.execute()
                return True

            if not self._redis("invalidate", group[0], _write):
                failed += group
        return failed

    def _queue(self, names: list[str]) -> None:
        with self._pending_lock:
            added = 0
            for name in names:
                self._seq += 1
                added += self._pending.pop(name, None) is None
                self._pending[name] = self._seq
            dropped = 0
            while len(self._pending) > _MAX_PENDING:
                del self._pending[next(iter(self._pending))]
                dropped += 1
            CACHE_INVALIDATIONS_PENDING.inc(added - dropped)
            if self._retrier is None or not self._retrier.is_alive():
                self._retrier = threading.Thread(
                    target=self._retry_loop, name="cache-invalidate-retry", daemon=True
                )
                self._retrier.start()
        if dropped:
            log.warning("too many pending cache invalidations", extra={"dropped": dropped})

    def _retry_loop(self) -> None:
        delay = _RETRY_MIN_S
        while True:
            time.sleep(delay)
            with self._pending_lock:
                batch = dict(self._pending)
                if not batch:
                    self._retrier = None
                    return
            failed = set(self._tombstone(list(batch)))
            if len(failed) < len(batch):
                with self._pending_lock:
                    done = [
                        n
                        for n, seq in batch.items()
                        if n not in failed and self._pending.get(n) == seq
                    ]
                    for name in done:
                        del self._pending[name]
                CACHE_INVALIDATIONS_PENDING.dec(len(done))
                log.info("queued cache invalidations delivered", extra={"keys": len(done)})
            delay = _RETRY_MIN_S if not failed else min(_RETRY_MAX_S, delay * 2)
