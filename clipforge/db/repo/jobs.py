"""The durable job queue: a Postgres table that is both the queue and the record.

All functions take a connection and run inside the caller's transaction, so a job is enqueued
atomically with the domain rows that need it, and a job is completed atomically with its
outputs and the enqueueing of the next stage. Nothing here commits.

Exactly-once completion rests on the lease: a worker may only complete, fail or heartbeat a job
while `lease_owner` is its id. When a lease expires the job is requeued with a new owner and the
old worker's late `complete` raises `LeaseLost`, which rolls back its transaction.

A job that failed because a dependency was down is `defer`red instead of `fail`ed: it waits
with growing delays and keeps its attempts, for up to a retry horizon.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from psycopg.types.json import Jsonb

from clipforge.db.pool import Conn
from clipforge.errors import Conflict, LeaseLost, NotFound
from clipforge.observability.tracing import current_traceparent

if TYPE_CHECKING:  # clipforge.queue imports this module
    from clipforge.queue.backoff import Backoff
    from clipforge.queue.policy import QueuePolicy

JobState = Literal["queued", "running", "succeeded", "failed", "dead"]
NOTIFY_CHANNEL = "clipforge_jobs"
_MAX_ERROR_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Job:
    """A row of the `jobs` table.

    Attributes:
        id: queue-assigned id, increasing with enqueue order.
        kind: what to run, e.g. ``import`` or ``transcribe``; selects the handler.
        payload: JSON arguments of the job.
        attempts: attempts started so far, including the running one.
        run_after: earliest time the job may be claimed (backoff schedule).
        lease_owner: worker id holding the job while it runs.
        last_error: error of the latest failed attempt, kept after success for the record.
        waiting_on: the dependency a deferred job waits for (None when not waiting).
        waiting_since: when the current dependency wait began (the horizon runs from here).
        dependency_waits: delays in the current wait (their backoff grows with it).
        run_id: the run (a backfill) the job belongs to; only that run's workers claim it.
        traceparent: W3C trace context of what enqueued the job (an API request, the stage
            before); the worker continues that trace. None while tracing is off.
    """

    id: int
    kind: str
    payload: dict[str, Any]
    video_id: UUID | None
    state: JobState
    attempts: int
    max_attempts: int
    run_after: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    result: dict[str, Any] | None
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    waiting_on: str | None
    waiting_since: datetime | None
    dependency_waits: int
    run_id: str | None
    traceparent: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        """Build from a `dict_row` of the jobs table."""
        return cls(**{name: row[name] for name in cls.__slots__})


def enqueue(
    conn: Conn,
    policy: QueuePolicy,
    *,
    kind: str,
    payload: Mapping[str, Any] | None = None,
    video_id: UUID | None = None,
    idempotency_key: str | None = None,
    max_attempts: int | None = None,
    delay_s: float = 0.0,
    run_id: str | None = None,
) -> Job:
    """Add a job in the caller's transaction; with an idempotency key, return the existing job.

    With `run_id` the job belongs to that run: only a claim passing the same run takes it.
    The current trace context (if tracing is on) is stored with the job, so the worker that
    runs it continues the trace of the request or stage that enqueued it.

    `max_attempts` defaults to the policy's (`QUEUE_MAX_ATTEMPTS`, built once per process by the
    caller), so every enqueue site obeys the setting without reading it.
    Idle workers are woken by NOTIFY, which Postgres delivers only when the transaction commits.
    """
    if max_attempts is None:
        max_attempts = policy.max_attempts
    row = conn.execute(
        """INSERT INTO jobs
               (kind, payload, video_id, idempotency_key, max_attempts, run_after, run_id,
                traceparent)
           VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s), %s, %s)
           ON CONFLICT (idempotency_key) DO NOTHING
           RETURNING *""",
        (
            kind,
            Jsonb(dict(payload or {})),
            video_id,
            idempotency_key,
            max_attempts,
            delay_s,
            run_id,
            current_traceparent(),
        ),
    ).fetchone()
    if row is None:
        existing = conn.execute(
            "SELECT * FROM jobs WHERE idempotency_key = %s", (idempotency_key,)
        ).fetchone()
        if existing is None:  # pragma: no cover - the conflicting row cannot vanish under FK rules
            raise Conflict(f"job with idempotency key {idempotency_key!r} disappeared")
        return Job.from_row(existing)
    conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, kind))
    return Job.from_row(row)


def requeue_expired(conn: Conn, *, limit: int = 1000) -> int:
    """Requeue running jobs whose lease expired (their worker died); `dead` if out of attempts."""
    rows = conn.execute(
        """WITH expired AS (
               SELECT id FROM jobs
               WHERE state = 'running' AND lease_expires_at < now()
               ORDER BY lease_expires_at
               LIMIT %s
               FOR UPDATE SKIP LOCKED)
           UPDATE jobs j
           SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'queued' END,
               last_error = 'lease expired: worker ' || j.lease_owner || ' stopped heartbeating',
               finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
               lease_owner = NULL, lease_expires_at = NULL, run_after = now(), updated_at = now()
           FROM expired WHERE j.id = expired.id
           RETURNING j.id""",
        (limit,),
    ).fetchall()
    return len(rows)


def claim(
    conn: Conn,
    *,
    worker_id: str,
    limit: int,
    lease_s: float,
    kinds: Sequence[str] | None = None,
    reap: bool = True,
    run_id: str | None = None,
) -> list[Job]:
    """Lease up to `limit` runnable jobs, oldest first; workers never block on each other's rows.

    Without `run_id` only jobs of no run are claimed; with it, only that run's jobs (so runs of
    one kind, e.g. two backfills with different scorers, never run each other's jobs).

    With `reap`, expired leases are requeued first; busy workers pass False on most claims since
    a lease cannot expire more often than once per lease length.
    """
    if reap:
        requeue_expired(conn)
    rows = conn.execute(
        """UPDATE jobs
           SET state = 'running', attempts = attempts + 1, lease_owner = %(worker)s,
               lease_expires_at = now() + make_interval(secs => %(lease)s),
               started_at = now(), updated_at = now()
           WHERE id IN (
               SELECT id FROM jobs
               WHERE state = 'queued' AND run_after <= now()
                 AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s::text[]))
                 AND run_id IS NOT DISTINCT FROM %(run)s::text
               ORDER BY run_after, id
               LIMIT %(limit)s
               FOR UPDATE SKIP LOCKED)
           RETURNING *""",
        {
            "worker": worker_id,
            "lease": lease_s,
            "limit": limit,
            "kinds": list(kinds) if kinds is not None else None,
            "run": run_id,
        },
    ).fetchall()
    return sorted((Job.from_row(r) for r in rows), key=lambda j: j.id)


def take_over_run(conn: Conn, *, run_id: str, worker_id: str) -> int:
    """Requeue the run's jobs leased by any worker but `worker_id`, giving their attempt back.

    A resumed run calls this first: the jobs its stopped driver held would otherwise stay
    `running` until their leases ran out. Safe even if that driver still lives: its late
    completion finds the lease gone and writes nothing (`LeaseLost`).
    """
    cur = conn.execute(
        """UPDATE jobs SET state = 'queued', attempts = greatest(attempts - 1, 0),
                  last_error = 'taken over by ' || %(worker)s || ' from ' || lease_owner,
                  lease_owner = NULL, lease_expires_at = NULL, run_after = now(), updated_at = now()
           WHERE run_id = %(run)s AND state = 'running' AND lease_owner <> %(worker)s""",
        {"run": run_id, "worker": worker_id},
    )
    return cur.rowcount


def heartbeat(conn: Conn, *, worker_id: str, job_ids: Sequence[int], lease_s: float) -> set[int]:
    """Extend the leases this worker still holds; return the ids still held."""
    if not job_ids:
        return set()
    rows = conn.execute(
        """UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %s), updated_at = now()
           WHERE id = ANY(%s) AND state = 'running' AND lease_owner = %s
           RETURNING id""",
        (lease_s, list(job_ids), worker_id),
    ).fetchall()
    return {int(r["id"]) for r in rows}


def hold_lease(conn: Conn, *, job_id: int, worker_id: str) -> None:
    """Lock the job's row if this worker still holds its lease; else raise `LeaseLost`.

    Called first in a completing transaction: the row lock keeps the reaper and other workers'
    claims (both `SKIP LOCKED`) off the job until the outputs and the completion commit, and a
    worker whose lease moved on (e.g. it was cut off from the database for longer than the
    lease) writes nothing at all. A lease that ran out but was not yet reaped is still held.
    """
    row = conn.execute(
        "SELECT 1 FROM jobs WHERE id = %s AND state = 'running' AND lease_owner = %s FOR UPDATE",
        (job_id, worker_id),
    ).fetchone()
    if row is None:
        raise LeaseLost(f"job {job_id} is no longer leased by {worker_id}")


def complete(
    conn: Conn, *, job_id: int, worker_id: str, result: Mapping[str, Any] | None = None
) -> None:
    """Mark a leased job succeeded; raise `LeaseLost` (roll back!) if the lease moved on."""
    cur = conn.execute(
        """UPDATE jobs SET state = 'succeeded', result = %s, lease_owner = NULL,
                  lease_expires_at = NULL, finished_at = now(), updated_at = now(),
                  waiting_on = NULL, waiting_since = NULL, dependency_waits = 0
           WHERE id = %s AND state = 'running' AND lease_owner = %s""",
        (Jsonb(dict(result)) if result is not None else None, job_id, worker_id),
    )
    if cur.rowcount != 1:
        raise LeaseLost(f"job {job_id} is no longer leased by {worker_id}")


def fail(
    conn: Conn,
    *,
    job_id: int,
    worker_id: str,
    error: str,
    retryable: bool,
    backoff: Backoff,
) -> JobState:
    """Record a failed attempt: retry after a backoff delay, or end `failed` / `dead`.

    `failed` means the input itself is bad (retrying cannot help); `dead` means retries ran out.
    Both keep the reason in `last_error` and can be re-driven.
    """
    row = conn.execute(
        "SELECT attempts, max_attempts FROM jobs"
        " WHERE id = %s AND state = 'running' AND lease_owner = %s FOR UPDATE",
        (job_id, worker_id),
    ).fetchone()
    if row is None:
        raise LeaseLost(f"job {job_id} is no longer leased by {worker_id}")
    state: JobState
    if not retryable:
        state, delay = "failed", 0.0
    elif row["attempts"] >= row["max_attempts"]:
        state, delay = "dead", 0.0
    else:
        state, delay = "queued", backoff.delay(row["attempts"])
    conn.execute(
        """UPDATE jobs SET state = %s, last_error = %s, lease_owner = NULL, lease_expires_at = NULL,
                  run_after = now() + make_interval(secs => %s), updated_at = now(),
                  finished_at = CASE WHEN %s = 'queued' THEN NULL ELSE now() END,
                  waiting_on = NULL, waiting_since = NULL, dependency_waits = 0
           WHERE id = %s""",
        (state, error[:_MAX_ERROR_CHARS], delay, state, job_id),
    )
    return state


def defer(
    conn: Conn,
    *,
    job_id: int,
    worker_id: str,
    error: str,
    dependency: str,
    backoff: Backoff,
    horizon_s: float,
) -> float | None:
    """Delay a job whose dependency is down, giving back the attempt it was charged.

    The n-th delay of one wait is `backoff.delay(n)`. Returns the delay in seconds, or None
    (nothing written) once the wait has lasted `horizon_s`: the caller then records an ordinary
    failure, so a dependency that never comes back still ends in `dead`, not an endless loop.
    """
    row = conn.execute(
        """SELECT dependency_waits,
                  EXTRACT(EPOCH FROM now() - coalesce(waiting_since, now())) AS waited_s
           FROM jobs WHERE id = %s AND state = 'running' AND lease_owner = %s FOR UPDATE""",
        (job_id, worker_id),
    ).fetchone()
    if row is None:
        raise LeaseLost(f"job {job_id} is no longer leased by {worker_id}")
    if float(row["waited_s"]) >= horizon_s:
        return None
    delay = backoff.delay(int(row["dependency_waits"]) + 1)
    conn.execute(
        """UPDATE jobs SET state = 'queued', attempts = greatest(attempts - 1, 0),
                  last_error = %s, lease_owner = NULL, lease_expires_at = NULL,
                  run_after = now() + make_interval(secs => %s), updated_at = now(),
                  waiting_on = %s, waiting_since = coalesce(waiting_since, now()),
                  dependency_waits = dependency_waits + 1
           WHERE id = %s""",
        (error[:_MAX_ERROR_CHARS], delay, dependency, job_id),
    )
    return delay


def release(conn: Conn, *, worker_id: str, job_ids: Sequence[int]) -> int:
    """Give leased jobs back unrun (graceful shutdown); the attempt does not count."""
    if not job_ids:
        return 0
    cur = conn.execute(
        """UPDATE jobs SET state = 'queued', attempts = greatest(attempts - 1, 0),
                  lease_owner = NULL, lease_expires_at = NULL, run_after = now(), updated_at = now()
           WHERE id = ANY(%s) AND state = 'running' AND lease_owner = %s""",
        (list(job_ids), worker_id),
    )
    if cur.rowcount:
        conn.execute("SELECT pg_notify(%s, 'released')", (NOTIFY_CHANNEL,))
    return cur.rowcount


def redrive(conn: Conn, *, job_id: int) -> Job:
    """Put a `dead` or `failed` job back in the queue with a fresh attempt budget."""
    row = conn.execute(
        """UPDATE jobs SET state = 'queued', attempts = 0, run_after = now(), updated_at = now(),
                  finished_at = NULL, waiting_on = NULL, waiting_since = NULL, dependency_waits = 0
           WHERE id = %s AND state IN ('dead', 'failed')
           RETURNING *""",
        (job_id,),
    ).fetchone()
    if row is None:
        current = get_job(conn, job_id=job_id)
        if current is None:
            raise NotFound(f"job {job_id} not found")
        raise Conflict(
            f"job {job_id} is {current.state}; only dead or failed jobs can be re-driven"
        )
    conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, row["kind"]))
    return Job.from_row(row)


def get_job(conn: Conn, *, job_id: int) -> Job | None:
    """One job by id, or None."""
    row = conn.execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone()
    return Job.from_row(row) if row else None


def waiting_dependencies(conn: Conn) -> list[str]:
    """Dependencies that queued jobs are still sleeping on (their delay not yet over)."""
    rows = conn.execute(
        """SELECT DISTINCT waiting_on FROM jobs
           WHERE state = 'queued' AND waiting_on IS NOT NULL AND run_after > now()"""
    ).fetchall()
    return sorted(str(r["waiting_on"]) for r in rows)


def wake_waiting(conn: Conn, *, dependency: str, per_s: float, limit: int = 10_000) -> int:
    """Make jobs waiting on `dependency` runnable: the n-th (oldest due first) after n / per_s
    seconds, never later than it was due anyway. Their wait's backoff starts over (a job that
    meets the dependency down again waits the base delay, not the outage's longest), but not
    their horizon (`waiting_since`) nor their attempts. Returns the number of jobs woken."""
    rows = conn.execute(
        """WITH locked AS (
               SELECT id, run_after FROM jobs
               WHERE state = 'queued' AND waiting_on = %(dep)s AND run_after > now()
               ORDER BY run_after, id
               LIMIT %(limit)s
               FOR UPDATE SKIP LOCKED),
           ranked AS (
               SELECT id, row_number() OVER (ORDER BY run_after, id) - 1 AS n FROM locked)
           UPDATE jobs j
           SET run_after = least(j.run_after, now() + make_interval(secs => ranked.n / %(per_s)s)),
               dependency_waits = 0, updated_at = now()
           FROM ranked WHERE j.id = ranked.id
           RETURNING j.kind""",
        {"dep": dependency, "limit": limit, "per_s": per_s},
    ).fetchall()
    for kind in sorted({str(r["kind"]) for r in rows}):
        conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, kind))
    return len(rows)


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts of unfinished or dead-lettered jobs.

    Attributes:
        depth: ``{(kind, state): count}`` for queued, running, failed and dead jobs.
        oldest_age_s: ``{kind: seconds}`` the oldest runnable queued job has waited.
        oldest_running_s: ``{kind: seconds}`` the longest-running job has been running.
        waiting_dependency: ``{(kind, dependency): count}`` of queued jobs delayed because a
            dependency was down (they keep their attempts; see `jobs.defer`).
    """

    depth: dict[tuple[str, str], int]
    oldest_age_s: dict[str, float]
    waiting_dependency: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest_running_s: dict[str, float] = field(default_factory=dict)

    def total(self, state: str) -> int:
        """Jobs in `state` across all kinds."""
        return sum(n for (_, s), n in self.depth.items() if s == state)


def queue_stats(conn: Conn) -> QueueStats:
    """Read current depth and age (index-only on the partial indexes of the jobs table)."""
    rows = conn.execute(
        """SELECT kind, state, count(*) AS n,
                  EXTRACT(EPOCH FROM now() - min(run_after)
                      FILTER (WHERE state = 'queued' AND run_after <= now())) AS age,
                  EXTRACT(EPOCH FROM now() - min(started_at)
                      FILTER (WHERE state = 'running')) AS running
           FROM jobs WHERE state IN ('queued', 'running', 'failed', 'dead')
           GROUP BY kind, state"""
    ).fetchall()
    depth = {(r["kind"], r["state"]): int(r["n"]) for r in rows}
    ages: dict[str, float] = {}
    running: dict[str, float] = {}
    for r in rows:
        if r["age"] is not None:
            ages[r["kind"]] = max(ages.get(r["kind"], 0.0), float(r["age"]))
        if r["running"] is not None:
            running[r["kind"]] = max(running.get(r["kind"], 0.0), float(r["running"]))
    # Same partial index as the claim path (queued jobs only), so it stays cheap.
    waiting = conn.execute(
        """SELECT kind, waiting_on, count(*) AS n FROM jobs
           WHERE state = 'queued' AND waiting_on IS NOT NULL GROUP BY kind, waiting_on"""
    ).fetchall()
    return QueueStats(
        depth=depth,
        oldest_age_s=ages,
        waiting_dependency={(r["kind"], r["waiting_on"]): int(r["n"]) for r in waiting},
        oldest_running_s=running,
    )
