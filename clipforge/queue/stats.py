"""Queue depth and age, for metrics, readiness and the operator."""

from __future__ import annotations

from prometheus_client import Gauge

from clipforge.db.pool import Conn
from clipforge.db.repo.jobs import QueueStats, queue_stats
from clipforge.metrics import QUEUE_DEPTH, QUEUE_OLDEST_AGE, QUEUE_WAITING_DEPENDENCY

# Jobs stuck in a stage (an actor that never gets its CPUs, a hung decode) hold their lease by
# heartbeating, so neither the lease nor the queue age shows them: this does (QueueJobRunningLong).
QUEUE_OLDEST_RUNNING = Gauge(
    "clipforge_queue_oldest_running_job_seconds",
    "How long the longest-running job of each kind has been running (this attempt).",
    ["kind"],
    multiprocess_mode="mostrecent",
)


def export_queue_metrics(conn: Conn) -> QueueStats:
    """Refresh the queue gauges from the database and return the stats.

    Every refresh sets every series seen so far: a kind with no unfinished jobs left (a
    backfill kind after its run) drops to 0 instead of keeping its last values, which would
    hold alerts such as "jobs dead" firing forever. (Zeroed, not removed: in Prometheus
    multiprocess mode a removed series would still be read back from the value files.)
    """
    stats = queue_stats(conn)
    _kinds_seen.update({k for k, _ in stats.depth} | set(stats.oldest_age_s))
    for kind in _kinds_seen:
        for state in _STATES:
            QUEUE_DEPTH.labels(kind=kind, state=state).set(stats.depth.get((kind, state), 0))
        QUEUE_OLDEST_AGE.labels(kind=kind).set(stats.oldest_age_s.get(kind, 0.0))
        QUEUE_OLDEST_RUNNING.labels(kind=kind).set(stats.oldest_running_s.get(kind, 0.0))
    # Zero the pairs seen before, so a wait that ended does not linger at its last count.
    _waiting_seen.update(stats.waiting_dependency)
    for kind, dependency in _waiting_seen:
        count = stats.waiting_dependency.get((kind, dependency), 0)
        QUEUE_WAITING_DEPENDENCY.labels(kind=kind, dependency=dependency).set(count)
    return stats


_STATES = ("queued", "running", "failed", "dead")
_waiting_seen: set[tuple[str, str]] = set()
_kinds_seen: set[str] = set()
