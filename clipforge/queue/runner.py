"""A queue worker loop: claim a batch, run each job's handler, complete or fail it.

Used directly for light jobs (webhook deliveries) and as the claim/heartbeat/complete shell of
the Ray Data pipeline worker. A heartbeat thread keeps every held lease alive while handlers run,
so only a worker that really stopped (crash, SIGKILL, partition) loses its jobs to another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clipforge.db.pool import Conn, Pool
from clipforge.errors import ClipForgeError, LeaseLost
from clipforge.logging import job_context
from clipforge.metrics import CLAIM_BATCH, JOB_DURATION, JOBS_CLAIMED, JOBS_FINISHED
from clipforge.queue import jobs as q
from clipforge.queue.backoff import Backoff
from clipforge.queue.notify import JobNotifier

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobResult:
    """What a handler returns.

    Attributes:
        result: JSON stored on the job row.
        on_commit: writes (outputs, next-stage enqueue) run in the same transaction that marks
            the job succeeded, so either all of it is visible or none of it.
        after_commit: best-effort follow-ups once that transaction committed (cache
            invalidation, deleting replaced objects); a failure here is logged, not retried.
    """

    result: dict[str, Any] | None = None
    on_commit: Callable[[Conn], None] | None = None
    after_commit: Callable[[], None] | None = None


Handler = Callable[[q.Job], JobResult | None]
# A batch handler runs many jobs of one kind at once (a Ray Data pipeline over the batch) and
# returns, per job id, its result or the exception that failed that job alone.
BatchHandler = Callable[[list[q.Job]], Mapping[int, JobResult | Exception]]
# Called inside the transaction that marks a job `failed` or `dead` (e.g. to fail its video).
FailureHook = Callable[[Conn, q.Job, str, str], None]


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    """Tunables of a runner.

    Attributes:
        batch_size: jobs claimed per round trip.
        lease_s: lease length; a dead worker's jobs return after at most this long.
        heartbeat_s: lease renewal interval, well under `lease_s`.
        idle_poll_s: longest sleep between claims when idle (NOTIFY usually wakes earlier).
        reap_interval_s: how often a busy worker requeues other workers' expired leases.
    """

    batch_size: int = 10
    lease_s: float = 60.0
    heartbeat_s: float = 15.0
    idle_poll_s: float = 5.0
    reap_interval_s: float = 5.0
    backoff: Backoff = field(default_factory=Backoff)


class QueueRunner:
    """Runs jobs of the kinds in `handlers` until `stop` is set."""

    def __init__(
        self,
        pool: Pool,
        handlers: Mapping[str, Handler],
        *,
        worker_id: str,
        options: RunnerOptions | None = None,
        notifier: JobNotifier | None = None,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
        on_failed: FailureHook | None = None,
    ) -> None:
        self._pool = pool
        self._handlers = dict(handlers)
        self._batch_handlers = dict(batch_handlers or {})
        self._on_failed = on_failed
        self.worker_id = worker_id
        self.options = options or RunnerOptions()
        self._notifier = notifier
        self._held: set[int] = set()
        self._held_lock = threading.Lock()
        self._next_reap = 0.0
        self._last_claim_empty = True
        self.stop = threading.Event()

    def run(self, *, until_empty: bool = False) -> int:
        """Loop until `stop` is set (or, with `until_empty`, until a claim finds nothing)."""
        beat_stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat_loop, args=(beat_stop,), name="heartbeat", daemon=True
        )
        beat.start()
        done = 0
        try:
            while not self.stop.is_set():
                ran = self.run_once()
                done += ran
                if ran == 0:
                    if until_empty:
                        break
                    self._idle_wait()
        finally:
            beat_stop.set()
            beat.join(timeout=self.options.heartbeat_s + 1)
        return done

    def run_once(self) -> int:
        """Claim one batch and run it; returns the number of jobs claimed."""
        # Idle workers reap on every poll (they have time); busy ones every reap_interval_s.
        now = time.monotonic()
        reap = now >= self._next_reap or self._last_claim_empty
        if reap:
            self._next_reap = now + self.options.reap_interval_s
        with self._pool.connection() as conn:
            batch = q.claim(
                conn,
                worker_id=self.worker_id,
                limit=self.options.batch_size,
                lease_s=self.options.lease_s,
                kinds=sorted(set(self._handlers) | set(self._batch_handlers)),
                reap=reap,
            )
        self._last_claim_empty = not batch
        CLAIM_BATCH.observe(len(batch))
        with self._held_lock:
            self._held.update(j.id for j in batch)
        for job in batch:
            JOBS_CLAIMED.labels(kind=job.kind).inc()
        grouped = [j for j in batch if j.kind in self._batch_handlers]
        for kind in sorted({j.kind for j in grouped}):
            self._run_batch([j for j in grouped if j.kind == kind])
        singles = [j for j in batch if j.kind not in self._batch_handlers]
        for index, job in enumerate(singles):
            if self.stop.is_set():
                self._release([j.id for j in singles[index:]])
                break
            self._run_job(job)
        return len(batch)

    def _run_batch(self, jobs: list[q.Job]) -> None:
        started = time.monotonic()
        kind = jobs[0].kind
        try:
            outcomes: Mapping[int, JobResult | Exception] = self._batch_handlers[kind](jobs)
        except Exception as exc:  # the whole batch failed (e.g. the cluster went away)
            outcomes = {j.id: exc for j in jobs}
        elapsed = time.monotonic() - started
        for job in jobs:
            outcome = outcomes.get(job.id, RuntimeError("batch handler returned no outcome"))
            with job_context(job.id):
                if isinstance(outcome, Exception):
                    self._record_failure(job, outcome)
                else:
                    self._finish_safely(job, outcome)
            JOB_DURATION.labels(kind=kind).observe(elapsed)
            with self._held_lock:
                self._held.discard(job.id)

    def _finish_safely(self, job: q.Job, outcome: JobResult) -> None:
        try:
            self._finish(job, outcome)
            JOBS_FINISHED.labels(kind=job.kind, outcome="succeeded").inc()
        except LeaseLost:
            log.warning("lease lost; another worker owns the job now")
            JOBS_FINISHED.labels(kind=job.kind, outcome="lease_lost").inc()
        except Exception as exc:  # writing the outputs failed: record it on the job
            self._record_failure(job, exc)

    def _run_job(self, job: q.Job) -> None:
        started = time.monotonic()
        with job_context(job.id):
            try:
                outcome = self._handlers[job.kind](job) or JobResult()
            except Exception as exc:  # every failure must be recorded on the job
                self._record_failure(job, exc)
            else:
                self._finish_safely(job, outcome)
            finally:
                JOB_DURATION.labels(kind=job.kind).observe(time.monotonic() - started)
                with self._held_lock:
                    self._held.discard(job.id)

    def _finish(self, job: q.Job, outcome: JobResult) -> None:
        with self._pool.connection() as conn, conn.transaction():
            if outcome.on_commit is not None:
                outcome.on_commit(conn)
            q.complete(conn, job_id=job.id, worker_id=self.worker_id, result=outcome.result)
        if outcome.after_commit is not None:
            try:
                outcome.after_commit()
            except Exception:  # the job's data is committed; this was only tidying up
                log.exception("after-commit step failed")

    def _record_failure(self, job: q.Job, exc: Exception) -> None:
        # Unknown exceptions are retried: most are transient, and max_attempts bounds a bug.
        if isinstance(exc, ClipForgeError):
            retryable, error = exc.retryable, exc.describe()
        else:
            retryable, error = True, f"{type(exc).__name__}: {exc}"
        try:
            with self._pool.connection() as conn, conn.transaction():
                state = q.fail(
                    conn,
                    job_id=job.id,
                    worker_id=self.worker_id,
                    error=error,
                    retryable=retryable,
                    backoff=self.options.backoff,
                )
                if state != "queued" and self._on_failed is not None:
                    self._on_failed(conn, job, state, error)
        except LeaseLost:
            log.warning("lease lost before the failure could be recorded")
            return
        JOBS_FINISHED.labels(kind=job.kind, outcome=state if state != "queued" else "retry").inc()
        log.warning("job attempt failed", extra={"kind": job.kind, "state": state, "error": error})

    def _release(self, job_ids: list[int]) -> None:
        with self._pool.connection() as conn:
            q.release(conn, worker_id=self.worker_id, job_ids=job_ids)
        with self._held_lock:
            self._held.difference_update(job_ids)

    def _heartbeat_loop(self, done: threading.Event) -> None:
        while not done.wait(self.options.heartbeat_s):
            with self._held_lock:
                held = sorted(self._held)
            if not held:
                continue
            try:
                with self._pool.connection() as conn:
                    kept = q.heartbeat(
                        conn, worker_id=self.worker_id, job_ids=held, lease_s=self.options.lease_s
                    )
            except Exception:  # a missed beat is survivable; the lease has slack
                log.exception("heartbeat failed")
                continue
            if lost := set(held) - kept:
                log.warning("leases lost", extra={"job_ids": sorted(lost)})

    def _idle_wait(self) -> None:
        if self._notifier is not None:
            self._notifier.wait(self.options.idle_poll_s)
        else:
            self.stop.wait(self.options.idle_poll_s)
