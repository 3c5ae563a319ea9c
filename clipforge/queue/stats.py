"""Queue depth and age, for metrics, readiness and the operator."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import Gauge

from clipforge.db.pool import Conn
from clipforge.metrics import QUEUE_DEPTH, QUEUE_OLDEST_AGE, QUEUE_WAITING_DEPENDENCY

# Jobs stuck in a stage (an actor that never gets its CPUs, a hung decode) hold their lease by
# heartbeating, so neither the lease nor the queue age shows them: this does (QueueJobRunningLong).
QUEUE_OLDEST_RUNNING = Gauge(
    "clipforge_queue_oldest_running_job_seconds",
    "How long the longest-running job of each kind has been running (this attempt).",
    ["kind"],
    multiprocess_mode="mostrecent",
)


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
