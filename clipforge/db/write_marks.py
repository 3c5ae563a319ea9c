"""Read-your-writes marks: the WAL position each API key's reads must see after its writes.

Kept in Redis when it is configured (API processes are several and stateless: a key's next
request may reach any of them) and always in-process (the same process, and the fallback while
Redis is down). See `clipforge.db.replicas` for how reads use them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from clipforge.resilience import CircuitBreaker

log = logging.getLogger(__name__)

# A write whose WAL position could not be read: its owner reads from the primary until the
# read-your-writes window ends.
UNKNOWN_LSN = 2**63 - 1

_MAX_LUA = """
local current = redis.call('GET', KEYS[1])
if (not current) or current < ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""
_MAX_LOCAL_MARKS = 10_000


class WriteMarks:
    """Per-owner WAL positions that the owner's reads must see, for `window_s` after a write.

    `client` is a sync Redis or Redis Cluster client (one key per owner, so one slot per call),
    or None. Positions are written as 16 hex digits so a Lua string comparison keeps the
    highest. If Redis cannot be asked, `floor` answers `UNKNOWN_LSN`: the read goes to the
    primary, which is never stale.
    """

    def __init__(self, client: Any | None, *, prefix: str = "cf:", window_s: float = 30.0) -> None:
        self._client = client
        self._prefix = prefix
        self._window_s = window_s
        self._local: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._breaker = CircuitBreaker("redis-read-your-writes", failure_threshold=3)

    def key(self, owner: str) -> str:
        """The Redis key holding `owner`'s mark."""
        return f"{self._prefix}ryw:{owner}"

    def record(self, owner: str, lsn: int) -> None:
        """Raise `owner`'s mark to `lsn` for the next `window_s` seconds."""
        expires = time.monotonic() + self._window_s
        with self._lock:
            current = self._local.pop(owner, None)
            if current is not None and current[1] > time.monotonic():
                lsn = max(lsn, current[0])
            self._local[owner] = (lsn, expires)
            while len(self._local) > _MAX_LOCAL_MARKS:
                del self._local[next(iter(self._local))]
        client = self._client
        if client is None:
            return
        args = (f"{lsn:016x}", max(1, int(self._window_s * 1000)))
        try:
            # EVAL, not a registered script: writes are rare, and registering needs a client
            # that has reached its server (a cluster client may start before any node answers).
            self._breaker.call(lambda: client.eval(_MAX_LUA, 1, self.key(owner), *args))
        except Exception as exc:  # Redis down: this process still honours the mark
            log.warning(
                "could not store a read-your-writes mark in redis",
                extra={"owner": owner, "error": repr(exc)},
            )

    def floor(self, owner: str) -> int | None:
        """The position `owner`'s reads must see, or None when no recent write is known."""
        local: int | None = None
        with self._lock:
            hit = self._local.get(owner)
            if hit is not None:
                if hit[1] > time.monotonic():
                    local = hit[0]
                else:
                    del self._local[owner]
        client = self._client
        if client is None:
            return local
        try:
            raw = self._breaker.call(lambda: client.get(self.key(owner)))
        except Exception:  # cannot know what other processes recorded: be safe
            return UNKNOWN_LSN
        remote = int(raw, 16) if raw else None
        if local is None or remote is None:
            return remote if local is None else local
        return max(local, remote)
