"""Durable job queue on Postgres (docs/architecture.md, "The job queue").

The SQL of the `jobs` table lives in `clipforge.db.repo.jobs`; this package re-exports it with
the runner, the notifier, the policy and the metrics around it.
"""

from clipforge.db.repo.jobs import (
    Job,
    JobState,
    QueueStats,
    claim,
    complete,
    defer,
    enqueue,
    fail,
    get_job,
    heartbeat,
    hold_lease,
    queue_stats,
    redrive,
    release,
    requeue_expired,
    take_over_run,
)
from clipforge.queue.backoff import Backoff
from clipforge.queue.notify import JobNotifier
from clipforge.queue.policy import QueuePolicy
from clipforge.queue.runner import JobResult, QueueRunner, RunnerOptions
from clipforge.queue.stats import export_queue_metrics

__all__ = [
    "Backoff",
    "Job",
    "JobNotifier",
    "JobResult",
    "JobState",
    "QueuePolicy",
    "QueueRunner",
    "QueueStats",
    "RunnerOptions",
    "claim",
    "complete",
    "defer",
    "enqueue",
    "export_queue_metrics",
    "fail",
    "get_job",
    "heartbeat",
    "hold_lease",
    "queue_stats",
    "redrive",
    "release",
    "requeue_expired",
    "take_over_run",
]
