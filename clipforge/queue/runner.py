"""A queue worker loop: claim a batch, run each job's handler, complete or fail it.

Used directly for light jobs (webhook deliveries) and as the claim/heartbeat/complete shell of
the pipeline worker. A heartbeat thread keeps every held lease alive while handlers run,
so only a worker that really stopped (crash, SIGKILL, partition) loses its jobs to another.

Dependency outages are not the job's fault and never end the process:
- Postgres away: claims pause with backoff; a finished job's outputs stay in memory and its
  commit (or failure record) is retried until the database answers. The completing transaction
  first checks that the lease is still ours, so a job another worker took over meanwhile is
  never written twice; a lease that lapsed simply lets the other worker run it.
- Any dependency away during a job (storage, network, database; see
  `clipforge.resilience.dependency_of`): the job is delayed with its own backoff and keeps its
  attempts, for up to `dependency_horizon_s`; only then do further failures spend attempts.
The loop exits only when `stop` is set (SIGTERM) or on a fatal configuration error.

Observability (both no-ops unless configured): each claimed job gets a span that continues the
trace stored with the job (`clipforge.observability.tracing`), current while its outcome is
recorded, so the commit and the next stage's enqueue belong to it; a job that ends `dead` on an
unexpected failure is reported to Sentry once, here on the driver.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from clipforge.db.pool import Conn, Pool
from clipforge.db.repo import jobs as q
from clipforge.errors import ConfigError, LeaseLost
from clipforge.logging import job_context
from clipforge.metrics import (
    CLAIM_BATCH,
    JOB_DURATION,
    JOBS_CLAIMED,
    JOBS_FINISHED,
    JOBS_WAITING_DEPENDENCY,
)
from clipforge.observability import tracing
from clipforge.queue.backoff import Backoff
from clipforge.queue.notify import JobNotifier
from clipforge.queue.policy import QueuePolicy
from clipforge.resilience import OutageLog, classify_failure, dependency_of, is_fatal_db_error
from clipforge.stages import stage_of_kind

log = logging.getLogger(__name__)
T = TypeVar("T")


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
# A batch handler runs many jobs of one kind at once (the stage's actors over the batch) and
# returns, per job id, its result or the exception that failed that job alone.
BatchHandler = Callable[[list[q.Job]], Mapping[int, JobResult | Exception]]
# Called inside the transaction that marks a job `failed` or `dead` (e.g. to fail its video).
FailureHook = Callable[[Conn, q.Job, str, str], None]


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    """Tunables of a runner.

    Attributes:
        policy: attempts, leases and retry delays (`QueuePolicy`, built once per process from
            the QUEUE_* settings); the same policy the process enqueues with.
        batch_size: jobs claimed per round trip.
        idle_poll_s: longest sleep between claims when idle (NOTIFY usually wakes earlier).
        reap_interval_s: how often a busy worker requeues other workers' expired leases.
        outage_backoff: pauses between tries to reach Postgres while it is away.
    """

    policy: QueuePolicy = field(default_factory=QueuePolicy.defaults)
    batch_size: int = 10
    idle_poll_s: float = 5.0
    reap_interval_s: float = 5.0
    outage_backoff: Backoff = field(default_factory=lambda: Backoff(base_s=0.5, cap_s=30.0))


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
        run_id: str | None = None,
        gate: Callable[[], None] | None = None,
    ) -> None:
        """With `run_id` the runner claims only that run's jobs (see `jobs.claim`). `gate` is
        called before each claim: while it raises `DependencyUnavailable` (a disk under its
        free-space floor) nothing is claimed, so no job starts only to hit the outage."""
        self._pool = pool
        self.run_id = run_id
        self._handlers = dict(handlers)
        self._batch_handlers = dict(batch_handlers or {})
        self._on_failed = on_failed
        self.worker_id = worker_id
        self.options = options or RunnerOptions()
        self._notifier = notifier
        self._gate = gate
        self._held: set[int] = set()
        # Jobs whose outcome this runner is writing: the heartbeat may find their lease gone
        # (the write committed between its snapshot and its update) without it being lost.
        self._finishing: set[int] = set()
        self._held_lock = threading.Lock()
        self._claims_paused = OutageLog(
            log,
            down="claims paused: {dependency} unavailable",
            up="claims resumed: {dependency} is back",
        )
        self._paused_on: str | None = None
        self._beat_outages = OutageLog(
            log,
            down="heartbeat failed: {dependency} unavailable",
            up="heartbeat: {dependency} is back",
        )
        self._next_reap = 0.0
        self._last_claim_empty = True
        self._db_down_since: float | None = None
        self.stop = threading.Event()

    def run(self, *, until_empty: bool = False) -> int:
        """Loop until `stop` is set (or, with `until_empty`, until a claim finds nothing)."""
        beat_stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat_loop, args=(beat_stop,), name="heartbeat", daemon=True
        )
        beat.start()
        done = 0
        failures = 0
        try:
            while not self.stop.is_set():
                try:
                    ran = self.run_once()
                except Exception as exc:  # claims pause; only a fatal config error ends the loop
                    if isinstance(exc, ConfigError) or is_fatal_db_error(exc):
                        raise
                    failures += 1
                    delay = self.options.outage_backoff.delay(failures)
                    dependency = dependency_of(exc)
                    if dependency == "postgres":
                        self._database_down(exc)
                    elif dependency is not None:  # the gate is closed (a full disk)
                        self._paused_on = dependency
                        self._claims_paused.down(dependency, exc)
                        delay = min(delay, self.options.policy.dependency_probe_s)
                    else:  # not an outage (a bug?): say so, but keep the worker alive
                        log.exception("claiming or running a batch failed; retrying")
                    self.stop.wait(delay)
                    continue
                failures = 0
                self._database_up()
                if self._paused_on is not None:
                    self._claims_paused.up(self._paused_on)
                    self._paused_on = None
                done += ran
                if ran == 0:
                    if until_empty:
                        break
                    self._idle_wait()
        finally:
            beat_stop.set()
            beat.join(timeout=self.options.policy.heartbeat_s + 1)
        return done

    def run_once(self) -> int:
        """Claim one batch and run it; returns the number of jobs claimed."""
        if self._gate is not None:
            self._gate()
        # Idle workers reap on every poll (they have time); busy ones every reap_interval_s.
        now = time.monotonic()
        reap = now >= self._next_reap or self._last_claim_empty
        if reap:
            self._next_reap = now + self.options.reap_interval_s
        claim_started = time.time_ns()
        with self._pool.connection() as conn:
            batch = q.claim(
                conn,
                worker_id=self.worker_id,
                limit=self.options.batch_size,
                lease_s=self.options.policy.lease_s,
                kinds=sorted(set(self._handlers) | set(self._batch_handlers)),
                reap=reap,
                run_id=self.run_id,
            )
        self._last_claim_empty = not batch
        if batch and tracing.enabled():
            self._start_spans(batch, (claim_started, time.time_ns()))
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
                for unrun in singles[index:]:
                    tracing.end_job_span(unrun.id, outcome="released")
                break
            self._run_job(job)
        return len(batch)

    @staticmethod
    def _start_spans(batch: list[q.Job], claim_ns: tuple[int, int]) -> None:
        for job in batch:
            tracing.start_job_span(
                job.id,
                f"job {job.kind}",
                job.traceparent,
                claim_ns=claim_ns,
                attributes={
                    "clipforge.job.id": job.id,
                    "clipforge.job.kind": job.kind,
                    "clipforge.job.attempt": job.attempts,
                    "clipforge.video.id": str(job.video_id) if job.video_id else None,
                    "clipforge.run.id": job.run_id,
                },
            )

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
            with job_context(job.id), tracing.job_scope(job.id):
                if isinstance(outcome, Exception):
                    self._record_failure(job, outcome)
                else:
                    self._finish_safely(job, outcome)
            # The jobs shared the batch's time: each is its share, so the histogram's sum stays
            # the wall time spent (not batch size x batch time).
            JOB_DURATION.labels(kind=kind).observe(elapsed / len(jobs))
            with self._held_lock:
                self._held.discard(job.id)
                self._finishing.discard(job.id)

    def _finish_safely(self, job: q.Job, outcome: JobResult) -> None:
        with self._held_lock:
            self._finishing.add(job.id)
        try:
            committed = self._persist(lambda: self._commit(job, outcome))
        except LeaseLost:
            # Also what a retried commit sees if the first one did land before the connection
            # broke: either way the job is recorded exactly once.
            log.warning("lease lost; another worker owns the job now (or it is already done)")
            JOBS_FINISHED.labels(kind=job.kind, outcome="lease_lost").inc()
            tracing.set_outcome("lease_lost")
            return
        except Exception as exc:  # writing the outputs failed: record it on the job
            self._record_failure(job, exc)
            return
        if committed is None:
            log.warning("stopped while the database was away; the lease will lapse")
            return
        JOBS_FINISHED.labels(kind=job.kind, outcome="succeeded").inc()
        tracing.set_outcome("succeeded")
        if outcome.after_commit is not None:
            try:
                outcome.after_commit()
            except Exception:  # the job's data is committed; this was only tidying up
                log.exception("after-commit step failed")

    def _run_job(self, job: q.Job) -> None:
        started = time.monotonic()
        with job_context(job.id), tracing.job_scope(job.id):
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
                    self._finishing.discard(job.id)

    def _commit(self, job: q.Job, outcome: JobResult) -> bool:
        # The next stage's job, enqueued in `on_commit`, stores this span's context.
        with tracing.span("queue.commit"), self._pool.connection() as conn, conn.transaction():
            # Lease first: a job taken over while we were cut off gets none of our writes.
            q.hold_lease(conn, job_id=job.id, worker_id=self.worker_id)
            if outcome.on_commit is not None:
                outcome.on_commit(conn)
            q.complete(conn, job_id=job.id, worker_id=self.worker_id, result=outcome.result)
        return True

    def _persist(self, write: Callable[[], T]) -> T | None:
        """Run a database write, retrying it with backoff for as long as Postgres is away.

        Returns None without writing if `stop` is set first (the job's lease then lapses and
        another worker runs it). Errors other than a database outage propagate.
        """
        tries = 0
        while True:
            try:
                result = write()
            except Exception as exc:
                if dependency_of(exc) != "postgres" or is_fatal_db_error(exc):
                    raise
                tries += 1
                self._database_down(exc)
                if self.stop.wait(self.options.outage_backoff.delay(tries)):
                    return None
                continue
            self._database_up()
            return result

    def _record_failure(self, job: q.Job, exc: Exception) -> None:
        failure = classify_failure(exc)
        with self._held_lock:
            self._finishing.add(job.id)

        def write() -> str:
            with self._pool.connection() as conn, conn.transaction():
                if failure.dependency is not None:
                    delay = q.defer(
                        conn,
                        job_id=job.id,
                        worker_id=self.worker_id,
                        error=failure.error,
                        dependency=failure.dependency,
                        backoff=self.options.policy.dependency_backoff,
                        horizon_s=self.options.policy.dependency_horizon_s,
                    )
                    if delay is not None:
                        return "waiting_dependency"
                state = q.fail(
                    conn,
                    job_id=job.id,
                    worker_id=self.worker_id,
                    error=failure.error,
                    retryable=failure.retryable,
                    backoff=self.options.policy.backoff,
                )
                if state != "queued" and self._on_failed is not None:
                    self._on_failed(conn, job, state, failure.error)
                return state

        try:
            state = self._persist(write)
        except LeaseLost:
            log.warning("lease lost before the failure could be recorded")
            return
        if state is None:
            log.warning("stopped while the database was away; the lease will lapse")
            return
        tracing.set_outcome(state, error=failure.error)
        if state == "waiting_dependency":
            assert failure.dependency is not None
            JOBS_WAITING_DEPENDENCY.labels(kind=job.kind, dependency=failure.dependency).inc()
            JOBS_FINISHED.labels(kind=job.kind, outcome=state).inc()
            log.warning(
                "dependency unavailable; job delayed without spending an attempt",
                extra={"kind": job.kind, "dependency": failure.dependency, "error": failure.error},
            )
            return
        JOBS_FINISHED.labels(kind=job.kind, outcome=state if state != "queued" else "retry").inc()
        log.warning(
            "job attempt failed", extra={"kind": job.kind, "state": state, "error": failure.error}
        )
        if state == "dead" and failure.dependency is None:
            # Once per job, when its retries are spent: an attempt that a retry fixes, a bad
            # input (`failed`) and an outage outlasting the horizon are not reported.
            from clipforge.observability.sentry import report_job_failure  # loads sentry_sdk

            report_job_failure(
                exc,
                job_id=job.id,
                kind=job.kind,
                # Backfill kinds carry a prefix (`backfill-detect`); other kinds are their own.
                stage=stage_of_kind(job.kind) or job.kind,
                video_id=str(job.video_id) if job.video_id else None,
                attempts=job.attempts,
                error=failure.error,
            )

    def _release(self, job_ids: list[int]) -> None:
        try:
            with self._pool.connection() as conn:
                q.release(conn, worker_id=self.worker_id, job_ids=job_ids)
        except Exception as exc:  # shutting down anyway: the leases lapse instead
            log.warning("could not release jobs", extra={"error": repr(exc)})
        with self._held_lock:
            self._held.difference_update(job_ids)

    def _database_down(self, exc: BaseException) -> None:
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            log.warning(
                "database unavailable; claims paused, finished work kept until it returns",
                extra={"error": repr(exc)},
            )

    def _database_up(self) -> None:
        if self._db_down_since is not None:
            down_s = time.monotonic() - self._db_down_since
            self._db_down_since = None
            log.info("database reachable again; resuming", extra={"down_s": round(down_s, 1)})

    def _heartbeat_loop(self, done: threading.Event) -> None:
        while not done.wait(self.options.policy.heartbeat_s):
            with self._held_lock:
                held = sorted(self._held)
            if not held:
                continue
            try:
                with self._pool.connection() as conn:
                    kept = q.heartbeat(
                        conn,
                        worker_id=self.worker_id,
                        job_ids=held,
                        lease_s=self.options.policy.lease_s,
                    )
            except Exception as exc:  # a missed beat is survivable; the lease has slack
                if dependency_of(exc) == "postgres":
                    self._beat_outages.down("postgres", exc)  # once per outage, not per beat
                else:
                    log.exception("heartbeat failed")
                continue
            self._beat_outages.up("postgres")
            with self._held_lock:
                # Only jobs still running here and not being recorded by this runner right now:
                # one it just committed (or failed) no longer has a lease, and that is no loss.
                lost = (set(held) - kept) & (self._held - self._finishing)
            if lost:
                log.warning("leases lost", extra={"job_ids": sorted(lost)})

    def _idle_wait(self) -> None:
        if self._notifier is not None:
            self._notifier.wait(self.options.idle_poll_s)
        else:
            self.stop.wait(self.options.idle_poll_s)
