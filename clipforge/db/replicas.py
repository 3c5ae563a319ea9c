"""Read replicas: lag-tolerant reads go to streaming replicas, everything else to the primary.

`ReplicaRouter.run(owner, fn)` runs a read (`fn(conn)`, no writes) on a replica when one is
usable, else on the primary; callers that write, or read inside a write's transaction, keep
using the primary pool directly. A read never fails because of a replica: a replica that is
down, lags past a bound, cannot hand out a connection in time, or breaks mid-query is skipped
and the read runs (again) on the primary.

Health: one thread per replica checks it every DB_REPLICA_CHECK_INTERVAL_S on dedicated
connections to it and to the primary (so saturated pools never read as "down" or "lagging"):
`pg_is_in_recovery()`, the replayed WAL position `pg_last_wal_replay_lsn()` and the commit time
of the last replayed transaction. Lag is 0 when the replica has replayed the primary's WAL
position read just before; otherwise bytes = primary position - replayed position and seconds
= now - last replayed commit time (everything committed before that is on the replica). A
replica is skipped while down, not in recovery (promoted, or a primary by mistake), past
DB_REPLICA_MAX_LAG_S or DB_REPLICA_MAX_LAG_BYTES, or unchecked for 3 intervals (at least 1 s:
a hung check); each skipped read counts in `clipforge_db_replica_skipped_total{replica,reason}`,
and every change of state is one log line. Routing uses the state of the last check: there is
no lag query per read.

Read-your-writes: after a write by an owner (the API key), `record_write` reads the primary's
WAL insert position (past the commit record even with synchronous_commit=off, where the
write position may not be yet) and stores it as the owner's mark for DB_READ_YOUR_WRITES_S
(`WriteMarks`: in Redis, so every API process sees it, and in-process). While a mark stands,
that owner's reads use only a replica that has replayed past it (known from the last check,
else asked on the read's connection, one extra query); otherwise the primary.

Connections: each replica has a pool of at most DB_REPLICA_POOL_MAX_SIZE (reduced to fit) plus
its check connection, and the checks share one connection to the primary. `ReplicaRouter.open`
refuses a configuration whose total with the primary pool and the caller's other connections
reaches 20 per process (one replica next to the default 10 + 4: 3 read connections + 1 check).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from prometheus_client import Counter, Gauge
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow
from psycopg_pool import PoolTimeout

from clipforge.db.pool import Conn, Pool, connect_kwargs, create_pool
from clipforge.db.pool_metrics import register_pool_metrics
from clipforge.db.write_marks import UNKNOWN_LSN, WriteMarks
from clipforge.errors import ConfigError
from clipforge.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Connections one process may hold in total (the scale rules: fewer than 20 per instance).
MAX_CONNECTIONS_PER_PROCESS = 19
# Longest wait for a replica connection before the read goes to the primary instead: a busy
# replica pool is this process's load, not an outage, and the primary pool is larger.
REPLICA_CHECKOUT_S = 0.1

# Positions as byte offsets (bigint), so they compare in Python without parsing "X/Y" text.
# The primary's position is its WAL *insert* position: with synchronous_commit=off a commit
# returns before its record is written, so the write position can be short of it. When
# nothing has been inserted on the current page yet (the last record, e.g. a segment switch,
# ended exactly at a page end), the insert position points past the new page's header, where
# no replica's replay position can ever be until the next record: the header is taken off.
PRIMARY_POSITION_SQL = """
SELECT CASE WHEN pos % seg = 40 THEN pos - 40 WHEN pos % blk = 24 THEN pos - 24 ELSE pos END
       AS lsn
FROM (SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint AS pos,
             current_setting('wal_block_size')::bigint AS blk,
             pg_size_bytes(current_setting('wal_segment_size'))::bigint AS seg) AS s
"""
_CHECK_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint AS replay,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS behind_s
"""
_REPLAY_SQL = "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint AS replay"

REPLICA_SKIPPED = Counter(
    "clipforge_db_replica_skipped_total",
    "Reads that passed over a replica, by reason: down, error (broke mid-read), "
    "not_in_recovery, lag_seconds, lag_bytes, unchecked (no recent health check), "
    "cache_fill (too stale to fill the shared cache).",
    ["replica", "reason"],
)
REPLICA_LAG_SECONDS = Gauge(
    "clipforge_db_replica_lag_seconds",
    "Replica lag at the last check (0: replayed everything the primary had written).",
    ["replica"],
    multiprocess_mode="max",
)
REPLICA_LAG_BYTES = Gauge(
    "clipforge_db_replica_lag_bytes",
    "WAL bytes the primary had written that the replica had not replayed, at the last check.",
    ["replica"],
    multiprocess_mode="max",
)
REPLICA_USABLE = Gauge(
    "clipforge_db_replica_usable",
    "1 while the replica takes reads; 0 while it is skipped (down or lagging past the bound).",
    ["replica"],
    multiprocess_mode="min",
)
DB_READS = Counter(
    "clipforge_db_reads_total",
    "Lag-tolerant reads by where they ran (a replica's host:port, or primary) and why.",
    ["target", "reason"],
)


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """A replica as its last health check saw it.

    Attributes:
        checked_at: `time.monotonic()` when the check started (before the primary was read).
        problem: why it cannot be used at all (down, not_in_recovery, error); None if it can.
        lag_s: seconds of commits not replayed yet (0 when caught up; inf when unknown).
        lag_bytes: WAL bytes not replayed yet.
    """

    checked_at: float
    problem: str | None
    lag_s: float = math.inf
    lag_bytes: int = 0


class CheckConnection:
    """One dedicated autocommit connection for health checks, reopened when broken.

    Not pooled: a check must not queue behind busy reads, nor count as a failed read.
    """

    def __init__(self, url: str, settings: Settings) -> None:
        self._url = url
        self._settings = settings
        self._conn: psycopg.Connection[DictRow] | None = None
        self.lock = threading.Lock()

    def get(self) -> psycopg.Connection[DictRow]:
        """The open connection (connecting first if needed)."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            kwargs = connect_kwargs(self._settings, application_name="clipforge-replica-check")
            # A check is a few catalog functions: a server that needs longer is unhealthy.
            kwargs |= {"options": "-c statement_timeout=2000", "connect_timeout": 2}
            conn = self._conn = psycopg.connect(self._url, autocommit=True, **kwargs)
        return conn

    def close(self) -> None:
        """Close the connection, if open."""
        if self._conn is not None:
            self._conn.close()


class Replica:
    """One replica: its read pool, its health-check connection and what is known of it."""

    def __init__(
        self, name: str, url: str, make_pool: Callable[[], Pool], settings: Settings
    ) -> None:
        self.name = name
        self.url = url
        self._make_pool = make_pool
        self.pool = make_pool()
        self.state = ReplicaState(checked_at=-math.inf, problem="unchecked")
        self.checks = CheckConnection(url, settings)
        # Highest replayed position seen (health checks and read-your-writes probes).
        self._replayed = -1
        self._lock = threading.Lock()

    @property
    def replayed(self) -> int:
        """Highest WAL position this replica is known to have replayed (-1: none yet)."""
        return self._replayed

    def saw_replay(self, lsn: int | None) -> None:
        """Remember a replayed position (positions only move forward)."""
        if lsn is not None:
            with self._lock:
                self._replayed = max(self._replayed, lsn)

    def set_state(self, state: ReplicaState) -> ReplicaState:
        """Replace the state; returns the previous one."""
        with self._lock:
            previous, self.state = self.state, state
        return previous

    def renew_pool(self) -> None:
        """Replace the read pool with a fresh one (the old one closes as its reads finish).

        After an outage psycopg_pool keeps retrying with a growing delay (seconds), during
        which every checkout would time out; a new pool connects on the first read.
        """
        old, self.pool = self.pool, self._make_pool()
        old.close(timeout=0)

    def close(self) -> None:
        """Close the check connection and the read pool."""
        self.checks.close()
        self.pool.close()


def _saturated(pool: Pool) -> bool:
    """No idle connection and no room to open another."""
    stats = pool.get_stats()
    return stats.get("pool_available", 0) == 0 and stats.get("pool_size", 0) >= pool.max_size


def replica_name(url: str) -> str:
    """`host:port` of a DSN: a metric label that carries no credentials."""
    params = conninfo_to_dict(url)
    return f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"


class ReplicaRouter:
    """Routes lag-tolerant reads to healthy replicas; with none configured, to the primary."""

    def __init__(
        self,
        primary: Pool,
        replicas: Sequence[Replica] = (),
        *,
        marks: WriteMarks | None = None,
        primary_checks: CheckConnection | None = None,
        max_lag_s: float = 2.0,
        max_lag_bytes: int = 16 * 1024**2,
        check_interval_s: float = 0.5,
    ) -> None:
        self.primary = primary
        self._primary_checks = primary_checks
        self.replicas = list(replicas)
        self.marks = marks or WriteMarks(None)
        self.max_lag_s = max_lag_s
        self.max_lag_bytes = max_lag_bytes
        self.check_interval_s = check_interval_s
        # A state older than this means the check itself hangs (a partitioned replica); at
        # least 1 s, so a briefly starved check thread does not skip a healthy replica.
        self._stale_after_s = max(3 * check_interval_s, 1.0)
        self._next = itertools.count()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def open(
        cls,
        settings: Settings,
        primary: Pool,
        *,
        redis_client: Any | None = None,
        redis_prefix: str = "cf:",
        application_name: str = "clipforge",
        other_connections: int = 0,
    ) -> ReplicaRouter:
        """Open a pool per DATABASE_REPLICA_URL and start the health checks.

        `other_connections` is what the process holds besides `primary` (the API's asyncio
        pool). A replica that is down at start does not stop the process: it is skipped
        until it answers.
        """
        urls = settings.database_replica_urls
        if not urls:
            return cls(primary)
        # One connection to the primary for the checks; each replica needs its check connection
        # plus at least one for reads.
        spare = MAX_CONNECTIONS_PER_PROCESS - primary.max_size - other_connections - 1
        per_replica = min(settings.db_replica_pool_max_size, spare // len(urls) - 1)
        if per_replica < 1:
            raise ConfigError(
                f"{len(urls)} read replica(s) do not fit in {MAX_CONNECTIONS_PER_PROCESS + 1} "
                f"connections per process next to DB_POOL_MAX_SIZE={primary.max_size} and "
                f"{other_connections} others; lower DB_POOL_MAX_SIZE or DATABASE_REPLICA_URL"
            )
        replicas = []
        for i, url in enumerate(urls):

            def make_pool(url: str = url, name: str = f"{application_name}-replica-{i}") -> Pool:
                pool = create_pool(
                    settings,
                    url,
                    application_name=name,
                    min_size=0,
                    max_size=per_replica,
                    timeout_s=REPLICA_CHECKOUT_S,
                    wait=False,
                )
                register_pool_metrics(pool)
                return pool

            replicas.append(Replica(replica_name(url), url, make_pool, settings))
        router = cls(
            primary,
            replicas,
            marks=WriteMarks(
                redis_client, prefix=redis_prefix, window_s=settings.db_read_your_writes_s
            ),
            primary_checks=CheckConnection(str(primary.conninfo), settings),
            max_lag_s=settings.db_replica_max_lag_s,
            max_lag_bytes=settings.db_replica_max_lag_bytes,
            check_interval_s=settings.db_replica_check_interval_s,
        )
        log.info(
            "read replicas configured",
            extra={"replicas": [r.name for r in replicas], "pool_max_size": per_replica},
        )
        router.start()
        return router

    @property
    def enabled(self) -> bool:
        """Whether any replica is configured."""
        return bool(self.replicas)

    # Health ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Check every replica once now, then keep checking in the background."""
        for replica in self.replicas:
            self.check(replica)
            thread = threading.Thread(
                target=self._watch, args=(replica,), name=f"replica-check-{replica.name}"
            )
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def _watch(self, replica: Replica) -> None:
        while not self._stop.wait(self.check_interval_s):
            try:
                self.check(replica)
            except Exception:  # never let the watcher die; the state ages into "unchecked"
                log.exception("read replica check failed", extra={"replica": replica.name})

    def _primary_position(self) -> int | None:
        checks = self._primary_checks
        try:
            if checks is not None:
                with checks.lock:  # shared by the replicas' watchers
                    row = checks.get().execute(PRIMARY_POSITION_SQL).fetchone()
            else:
                with self.primary.connection(timeout=REPLICA_CHECKOUT_S) as conn:
                    row = conn.execute(PRIMARY_POSITION_SQL).fetchone()
        except psycopg.Error:  # primary down: lag is judged from replay times alone
            return None
        return int(row["lsn"]) if row is not None else None

    def check(self, replica: Replica) -> ReplicaState:
        """Measure `replica` now, update its state, metrics and log; returns the new state."""
        started = time.monotonic()
        primary_lsn = self._primary_position()
        try:
            row = replica.checks.get().execute(_CHECK_SQL).fetchone()
        except psycopg.Error as exc:
            state = ReplicaState(checked_at=started, problem="down")
            detail: dict[str, Any] = {"error": repr(exc)}
        else:
            assert row is not None
            replay = row["replay"]
            replica.saw_replay(replay)
            detail = {}
            if not row["in_recovery"] or replay is None:
                state = ReplicaState(checked_at=started, problem="not_in_recovery")
            elif primary_lsn is not None and replay >= primary_lsn:
                state = ReplicaState(checked_at=started, problem=None, lag_s=0.0, lag_bytes=0)
            else:
                behind = row["behind_s"]
                state = ReplicaState(
                    checked_at=started,
                    problem=None,
                    lag_s=max(0.0, float(behind)) if behind is not None else math.inf,
                    lag_bytes=max(0, primary_lsn - replay) if primary_lsn is not None else 0,
                )
        previous = replica.set_state(state)
        if state.problem is None and previous.problem in ("down", "error"):
            replica.renew_pool()
        self._report(replica, previous, state, detail)
        return state

    def _report(
        self, replica: Replica, previous: ReplicaState, state: ReplicaState, detail: dict[str, Any]
    ) -> None:
        if state.problem is None:
            REPLICA_LAG_SECONDS.labels(replica=replica.name).set(state.lag_s)
            REPLICA_LAG_BYTES.labels(replica=replica.name).set(state.lag_bytes)
        now = time.monotonic()
        was = self.skip_reason(previous, now)
        reason = self.skip_reason(state, now)
        REPLICA_USABLE.labels(replica=replica.name).set(0 if reason else 1)
        if reason == was:
            return
        fields = {
            "replica": replica.name,
            "reason": reason,
            "lag_s": state.lag_s,
            "lag_bytes": state.lag_bytes,
            "max_lag_s": self.max_lag_s,
            "max_lag_bytes": self.max_lag_bytes,
        } | detail
        if reason is None:
            log.info("read replica in use", extra=fields)
        else:
            log.warning("read replica skipped; its reads go to the primary", extra=fields)

    def skip_reason(
        self, state: ReplicaState, now: float, max_staleness_s: float | None = None
    ) -> str | None:
        """Why a replica in `state` must not serve a read now (None: it may).

        `max_staleness_s` is the caller's own bound on staleness: the lag at the check plus
        the time since, which covers commits made after the check.
        """
        if state.problem is not None:
            return state.problem
        age = now - state.checked_at
        if age > self._stale_after_s:
            return "unchecked"
        if state.lag_bytes > self.max_lag_bytes:
            return "lag_bytes"
        if state.lag_s > self.max_lag_s:
            return "lag_seconds"
        if max_staleness_s is not None and state.lag_s + age > max_staleness_s:
            return "cache_fill"
        return None

    # Reads ----------------------------------------------------------------------------------

    def run(
        self,
        owner: str | None,
        fn: Callable[[Conn], T],
        *,
        max_staleness_s: float | None = None,
    ) -> T:
        """`fn(conn)` on a usable replica, else on the primary; `fn` must only read.

        `owner`'s recent writes are visible to it (read-your-writes). `max_staleness_s`
        further bounds how stale the replica may be (see `skip_reason`).
        """
        if not self.replicas:
            return self._on_primary(fn, None)
        now = time.monotonic()
        usable: list[Replica] = []
        for replica in self.replicas:
            reason = self.skip_reason(replica.state, now, max_staleness_s)
            if reason is None:
                usable.append(replica)
            else:
                REPLICA_SKIPPED.labels(replica=replica.name, reason=reason).inc()
        if not usable:
            return self._on_primary(fn, "no_usable_replica")
        floor = self.marks.floor(owner) if owner is not None else None
        if floor is not None:
            if floor == UNKNOWN_LSN:
                return self._on_primary(fn, "read_your_writes")
            caught_up = [r for r in usable if r.replayed >= floor]
            if caught_up:  # known to have replayed the owner's writes: no probe needed
                usable, floor = caught_up, None
        replica = usable[next(self._next) % len(usable)]
        if _saturated(replica.pool) and not _saturated(self.primary):
            # Every replica connection is busy but the primary has room: use it rather than
            # queue (the replica gets the reads again as soon as a connection is free).
            return self._on_primary(fn, "replica_busy")
        used: Conn | None = None
        try:
            with replica.pool.connection() as conn:
                used = conn
                if floor is None or self._replayed_past(conn, replica, floor):
                    result = fn(conn)
                    DB_READS.labels(target=replica.name, reason="ok").inc()
                    return result
        except PoolTimeout:
            # No replica connection within REPLICA_CHECKOUT_S: all busy (the primary's pool is
            # larger), or the replica went away since its last check (which will notice).
            return self._on_primary(fn, "replica_timeout")
        except psycopg.OperationalError as exc:
            # Lost server, shutdown, conflict with recovery, timeout: the read is retried on
            # the primary. A broken connection means the replica itself is in trouble: skip it
            # until its next successful check.
            if used is not None and (used.closed or used.broken):
                previous = replica.set_state(ReplicaState(checked_at=now, problem="error"))
                self._report(replica, previous, replica.state, {"error": repr(exc)})
            REPLICA_SKIPPED.labels(replica=replica.name, reason="error").inc()
            log.warning(
                "read failed on a replica; retrying on the primary",
                extra={"replica": replica.name, "error": repr(exc)},
            )
            return self._on_primary(fn, "replica_error")
        return self._on_primary(fn, "read_your_writes")

    def _replayed_past(self, conn: Conn, replica: Replica, floor: int) -> bool:
        row = conn.execute(_REPLAY_SQL).fetchone()
        replay = row["replay"] if row is not None else None
        replica.saw_replay(replay)
        return replay is not None and replay >= floor

    def _on_primary(self, fn: Callable[[Conn], T], reason: str | None) -> T:
        with self.primary.connection() as conn:
            result = fn(conn)
        if reason is not None:
            DB_READS.labels(target="primary", reason=reason).inc()
        return result

    # Writes ---------------------------------------------------------------------------------

    def record_write(self, owner: str) -> None:
        """Call after `owner`'s write committed: its reads must see it from now on."""
        if not self.replicas:
            return
        try:
            with self.primary.connection() as conn:
                row = conn.execute(PRIMARY_POSITION_SQL).fetchone()
            lsn = int(row["lsn"]) if row is not None else UNKNOWN_LSN
        except psycopg.Error as exc:  # unknown position: the primary for the whole window
            log.warning("could not read the primary's WAL position", extra={"error": repr(exc)})
            lsn = UNKNOWN_LSN
        self.marks.record(owner, lsn)

    def close(self) -> None:
        """Stop the checks and close the replicas' connections (not the primary's)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for replica in self.replicas:
            replica.close()
        if self._primary_checks is not None:
            self._primary_checks.close()
