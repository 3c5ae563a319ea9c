"""Per-API-key rate limiting, atomic in Redis (GCRA).

The generic cell rate algorithm keeps one timestamp per key ("theoretical arrival time") and
decides in a single Lua script, so any number of API processes share one exact limit, with
a precise Retry-After. The clock is Redis' own (TIME), so API hosts with skewed clocks agree.
If Redis is down the limiter lets requests through (with a metric): availability of the API
matters more than exact limits during a cache outage.

`acheck` is the API's hot path: the same GCRA decision from an asyncio client, and in the same
script (one round trip) a GET of the cache keys the request is about to read, so an
authenticated cached read costs one Redis round trip instead of two.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis
import redis.asyncio

from clipforge.metrics import CACHE_ERRORS, RATE_LIMITED

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
# After a Redis error the async path skips Redis this long, so a blackholed Redis costs one
# socket timeout per process per interval instead of one per request.
_SKIP_AFTER_ERROR_S = 2.0


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
        self, client: redis.Redis | None, *, per_minute: int, burst: int, prefix: str = "cf:rl:"
    ) -> None:
        self._client = client
        self._interval_ms = 60_000.0 / per_minute
        self._burst = burst
        self._prefix = prefix
        self._script = client.register_script(_GCRA) if client is not None else None
        self._skip_until = 0.0

    @property
    def client(self) -> redis.Redis | None:
        """The Redis holding the limits (the async path connects to the same server)."""
        return self._client

    def check(self, key: str) -> RateDecision:
        """Count one request for `key` and say whether it is allowed."""
        if self._script is None:
            return RateDecision(True, 0.0, self._burst)
        try:
            allowed, wait_ms, remaining = self._script(
                keys=[self._prefix + key], args=[self._interval_ms, self._burst]
            )
        except redis.RedisError as exc:
            CACHE_ERRORS.labels(op="ratelimit").inc()
            log.warning("rate limiter unavailable; allowing request", extra={"error": repr(exc)})
            return RateDecision(True, 0.0, 0)
        if not allowed:
            RATE_LIMITED.inc()
            return RateDecision(False, max(0.001, math.ceil(float(wait_ms)) / 1000.0), 0)
        return RateDecision(True, 0.0, int(remaining))

    async def acheck(
        self, client: redis.asyncio.Redis | None, key: str, *, get: Sequence[str] = ()
    ) -> tuple[RateDecision, list[bytes | None] | None]:
        """`check` from an asyncio client on the same Redis, plus a GET of `get` when allowed.

        Returns the decision and the values of `get` (None for a missing key), or None for the
        values when Redis could not be asked (the caller then reads its cache the usual way).
        """
        if client is None or time.monotonic() < self._skip_until:
            return RateDecision(True, 0.0, self._burst), None
        keys = (self._prefix + key, *get)
        args: list[str | float] = [*keys, self._interval_ms, self._burst]
        try:
            try:
                reply = await client.evalsha(_GCRA_GET_SHA, len(keys), *args)
            except redis.exceptions.NoScriptError:  # first call on this server: load it
                reply = await client.eval(_GCRA_GET, len(keys), *args)
        except (redis.RedisError, OSError) as exc:
            self._skip_until = time.monotonic() + _SKIP_AFTER_ERROR_S
            CACHE_ERRORS.labels(op="ratelimit").inc()
            log.warning("rate limiter unavailable; allowing request", extra={"error": repr(exc)})
            return RateDecision(True, 0.0, 0), None
        allowed, wait_ms, remaining = reply[0], reply[1], reply[2]
        if not allowed:
            RATE_LIMITED.inc()
            return RateDecision(False, max(0.001, math.ceil(float(wait_ms)) / 1000.0), 0), None
        values = [v if isinstance(v, bytes) else None for v in reply[3]] if get else []
        return RateDecision(True, 0.0, int(remaining)), values


_GCRA_GET_SHA = hashlib.sha1(_GCRA_GET.encode()).hexdigest()
