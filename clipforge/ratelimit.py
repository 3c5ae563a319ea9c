"""Per-API-key rate limiting, atomic in Redis (GCRA).

The generic cell rate algorithm keeps one timestamp per key ("theoretical arrival time") and
decides in a single Lua script, so any number of API processes share one exact limit, with
a precise Retry-After. The clock is Redis' own (TIME), so API hosts with skewed clocks agree.
If Redis is down the limiter lets requests through (with a metric): availability of the API
matters more than exact limits during a cache outage.

`acheck` is the API's hot path: the same GCRA decision from an asyncio client, and in the same
script (one round trip) a GET of the cache keys the request is about to read, so an
authenticated cached read costs one Redis round trip instead of two.

On a Redis Cluster a script may only touch keys of one slot. The limit key is per API key and
the cache keys are per video (shared by every key that may read it, invalidated by the worker
which knows only the video), so they cannot share a slot without tying each API key's whole
cache to one master. There `acheck` sends the one-key GCRA script and an MGET of the cache keys
(which share the video's hash tag: one slot) at the same time: still one round-trip time,
to two masters at most. Every script here touches exactly one key.

Fail open, on purpose, on one server and on a cluster: the limits protect capacity and
fairness, not secrets (keys carry 256 random bits, so even unlimited guessing while the
failed-authentication limiter is open finds none; each guess costs one indexed lookup).
Failing closed would turn a cache outage into an API outage: with one of three masters lost,
every caller whose limit lives there would get 429s. The back-off after an error is per master,
so keys whose limits live on the masters still up keep their exact limits.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import MaxConnectionsError, RedisClusterException

from clipforge.cache import UNREACHABLE
from clipforge.metrics import CACHE_ERRORS, RATE_LIMITED
from clipforge.redis_client import AsyncRedisClient, RedisClient, is_cluster, node_of

log = logging.getLogger(__name__)

_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {0, math.ceil(allow_at - now), 0}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now))
return {1, 0, math.floor((now - allow_at) / interval)}
"""
# The GCRA above, then (only when allowed) a GET of KEYS[2..n]: the cache read of the request.
_GCRA_GET = (
    _GCRA.rsplit("return {1, 0,", 1)[0]
    + """local vals = {}
for i = 2, #KEYS do vals[i - 1] = redis.call('GET', KEYS[i]) or false end
return {1, 0, math.floor((now - allow_at) / interval), vals}
"""
)
# After a Redis error the async path skips that server (that master, on a cluster) this long,
# so a blackholed Redis costs one socket timeout per process per interval, not one per request.
_SKIP_AFTER_ERROR_S = 2.0
_ERRORS = (redis.RedisError, RedisClusterException, OSError)


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Outcome of one check.

    Attributes:
        allowed: whether the request may proceed.
        retry_after_s: when refused, seconds until a request would be allowed.
        remaining: requests still allowed right now.
    """

    allowed: bool
    retry_after_s: float
    remaining: int


class RateLimiter:
    """`per_minute` sustained requests with bursts of up to `burst`, per key."""

    def __init__(
        self, client: RedisClient | None, *, per_minute: int, burst: int, prefix: str = "cf:rl:"
    ) -> None:
        self._client = client
        self._interval_ms = 60_000.0 / per_minute
        self._burst = burst
        self._prefix = prefix
        # Master ("" for one server) -> monotonic time until which the async path skips it.
        self._skip_until: dict[str, float] = {}

    @property
    def client(self) -> RedisClient | None:
        """The Redis holding the limits (the async path connects to the same server)."""
        return self._client

    def check(self, key: str) -> RateDecision:
        """Count one request for `key` and say whether it is allowed."""
        if self._client is None:
            return RateDecision(True, 0.0, self._burst)
        name, args = self._prefix + key, (self._interval_ms, self._burst)
        try:
            try:
                reply = self._client.evalsha(_GCRA_SHA, 1, name, *args)
            except redis.exceptions.NoScriptError:  # first call on this server: load it
                reply = self._client.eval(_GCRA, 1, name, *args)
            allowed, wait_ms, remaining = reply
        except _ERRORS as exc:
            CACHE_ERRORS.labels(op="ratelimit").inc()
            log.warning("rate limiter unavailable; allowing request", extra={"error": repr(exc)})
            return RateDecision(True, 0.0, 0)
        if not allowed:
            RATE_LIMITED.inc()
            return RateDecision(False, max(0.001, math.ceil(float(wait_ms)) / 1000.0), 0)
        return RateDecision(True, 0.0, int(remaining))

    async def acheck(
        self, client: AsyncRedisClient | None, key: str, *, get: Sequence[str] = ()
    ) -> tuple[RateDecision, list[bytes | None] | None]:
        """`check` from an asyncio client on the same Redis, plus a GET of `get` when allowed.

        Returns the decision and the values of `get` (None for a missing key), or None for the
        values when Redis could not be asked (the caller then reads its cache the usual way).
        On a cluster the keys of `get` must share a hash tag (one slot), and a value is
        `clipforge.cache.UNREACHABLE` when their master failed (the cache then skips Redis).
        """
        name = self._prefix + key
        node = node_of(client, name)
        if client is None or self._skipping(node):
            return RateDecision(True, 0.0, self._burst), None
        if is_cluster(client):
            return await self._acheck_cluster(client, name, node, get)
        keys = (name, *get)
        try:
            reply = await _aeval(client, _GCRA_GET, _GCRA_GET_SHA, keys, self._args())
        except _ERRORS as exc:
            return self._failed_open(node, exc), None
        allowed, wait_ms, remaining = reply[0], reply[1], reply[2]
        if not allowed:
            return self._refused(wait_ms), None
        values = [v if isinstance(v, bytes) else None for v in reply[3]] if get else []
        return RateDecision(True, 0.0, int(remaining)), values

    async def _acheck_cluster(
        self, client: AsyncRedisClient, name: str, node: str, get: Sequence[str]
    ) -> tuple[RateDecision, list[bytes | None] | None]:
        """GCRA on the limit key's master and MGET on the cache keys' master, concurrently."""
        get_node = node_of(client, get[0]) if get else ""
        fetch = bool(get) and not self._skipping(get_node)
        results: tuple[Any, Any] = await asyncio.gather(
            _aeval(client, _GCRA, _GCRA_SHA, (name,), self._args()),
            client.mget(*get) if fetch else _nothing(),
            return_exceptions=True,
        )
        limit, read = results
        # Keys whose master failed or is being skipped: the cache reads Postgres for them
        # without another (likely timing-out) Redis call in this request.
        values: list[bytes | None] = [UNREACHABLE] * len(get)
        if isinstance(read, BaseException):
            if not isinstance(read, _ERRORS):
                raise read
            self._note_error(get_node, read, op="readahead")
        elif fetch:
            values = [v if isinstance(v, bytes) else None for v in read]
        if isinstance(limit, BaseException):
            if not isinstance(limit, _ERRORS):
                raise limit
            return self._failed_open(node, limit), values
        allowed, wait_ms, remaining = limit
        if not allowed:
            return self._refused(wait_ms), None
        return RateDecision(True, 0.0, int(remaining)), values

    def _args(self) -> tuple[float, int]:
        return self._interval_ms, self._burst

    def _skipping(self, node: str) -> bool:
        return time.monotonic() < self._skip_until.get(node, 0.0)

    def _note_error(self, node: str, exc: BaseException, *, op: str = "ratelimit") -> None:
        # A pool with every connection busy is this process's load, not a lost server.
        if not isinstance(exc, MaxConnectionsError):
            self._skip_until[node] = time.monotonic() + _SKIP_AFTER_ERROR_S
        CACHE_ERRORS.labels(op=op).inc()
        message = (
            "rate limiter unavailable; allowing request"
            if op == "ratelimit"
            else "cache read-ahead failed; reading the usual way"
        )
        log.warning(message, extra={"node": node, "error": repr(exc)})

    def _failed_open(self, node: str, exc: BaseException) -> RateDecision:
        self._note_error(node, exc)
        return RateDecision(True, 0.0, 0)

    @staticmethod
    def _refused(wait_ms: Any) -> RateDecision:
        RATE_LIMITED.inc()
        return RateDecision(False, max(0.001, math.ceil(float(wait_ms)) / 1000.0), 0)


async def _aeval(
    client: AsyncRedisClient, script: str, sha: str, keys: Sequence[str], args: Sequence[float]
) -> Any:
    """EVALSHA, loading the script with EVAL on a server (or master) that lacks it."""
    try:
        return await client.evalsha(sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        return await client.eval(script, len(keys), *keys, *args)


async def _nothing() -> None:
    return None


_GCRA_SHA = hashlib.sha1(_GCRA.encode()).hexdigest()
_GCRA_GET_SHA = hashlib.sha1(_GCRA_GET.encode()).hexdigest()
