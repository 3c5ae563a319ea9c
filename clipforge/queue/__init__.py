"""Durable job queue on Postgres (docs/architecture.md, "The job queue")."""

from clipforge.queue.backoff import Backoff
from clipforge.queue.jobs import (
    Job,
    JobState,
    claim,
    complete,
    defer,
    enqueue,
    fail,
    get_job,
    heartbeat,
    hold_lease,
    redrive,
    release,
    requeue_expired,
    take_over_run,
)
from clipforge.queue.notify import JobNotifier
from clipforge.queue.runner import JobResult, QueueRunner, RunnerOptions
from clipforge.queue.stats import QueueStats, export_queue_metrics, queue_stats

__all__ = [
    "Backoff",
    "Job",
    "JobNotifier",
    "JobResult",
    "JobState",
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
