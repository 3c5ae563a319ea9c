"""Per-API-key rate limiting, atomic in Redis (GCRA).

The generic cell rate algorithm keeps one timestamp per key ("theoretical arrival time") and
decides in a single Lua script, so any number of API processes share one exact limit, with
a precise Retry-After. The clock is Redis' own (TIME), so API hosts with skewed clocks agree.
If Redis is down the limiter lets requests through (with a metric): availability of the API
matters more than exact limits during a cache outage.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import redis

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
