"""Jobs failing on a dependency outage wait without spending attempts, up to the horizon."""

from __future__ import annotations

from clipforge.db.pool import Pool
from clipforge.errors import DependencyUnavailable
from clipforge.queue import (
    Backoff,
    Job,
    JobResult,
    QueuePolicy,
    QueueRunner,
    RunnerOptions,
    get_job,
)
from clipforge.queue.stats import export_queue_metrics
from tests.utils.factories import enqueue_many


def _s3_down(_job: Job) -> JobResult:
    raise DependencyUnavailable("s3 unavailable: connection refused", dependency="s3")


def test_dependency_failure_delays_the_job_and_keeps_its_attempts(db: Pool) -> None:
    (job,) = enqueue_many(db, 1, max_attempts=1)
    options = RunnerOptions(
        policy=QueuePolicy.defaults().replace(dependency_backoff=Backoff(base_s=30, cap_s=60))
    )
    runner = QueueRunner(db, {"test": _s3_down}, worker_id="w", options=options)
    for _ in range(3):  # each wait is a new, longer delay; none spends the single attempt
        assert runner.run_once() == 1
        with db.connection() as conn:
            conn.execute("UPDATE jobs SET run_after = now() WHERE id = %s", (job.id,))
    with db.connection() as conn:
        waiting = get_job(conn, job_id=job.id)
        stats = export_queue_metrics(conn)
    assert waiting is not None and waiting.state == "queued" and waiting.attempts == 0
    assert waiting.waiting_on == "s3" and waiting.dependency_waits == 3
    assert waiting.last_error == "DependencyUnavailable[s3]: s3 unavailable: connection refused"
    assert stats.waiting_dependency == {("test", "s3"): 1}


def test_past_the_horizon_dependency_failures_spend_attempts(db: Pool) -> None:
    (job,) = enqueue_many(db, 1, max_attempts=1)
    options = RunnerOptions(policy=QueuePolicy.defaults().replace(dependency_horizon_s=0.0))
    QueueRunner(db, {"test": _s3_down}, worker_id="w", options=options).run(until_empty=True)
    with db.connection() as conn:
        dead = get_job(conn, job_id=job.id)
    assert dead is not None and dead.state == "dead" and dead.attempts == 1
    assert dead.waiting_on is None
