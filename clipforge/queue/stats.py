"""Queue depth and age, for metrics, readiness and the operator."""

from __future__ import annotations

from dataclasses import dataclass, field

from clipforge.db.pool import Conn
from clipforge.metrics import QUEUE_DEPTH, QUEUE_OLDEST_AGE, QUEUE_WAITING_DEPENDENCY


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts of unfinished or dead-lettered jobs.

    Attributes:
        depth: ``{(kind, state): count}`` for queued, running, failed and dead jobs.
        oldest_age_s: ``{kind: seconds}`` the oldest runnable queued job has waited.
        waiting_dependency: ``{(kind, dependency): count}`` of queued jobs delayed because a
            dependency was down (they keep their attempts; see `jobs.defer`).
    """

    depth: dict[tuple[str, str], int]
    oldest_age_s: dict[str, float]
    waiting_dependency: dict[tuple[str, str], int] = field(default_factory=dict)

    def total(self, state: str) -> int:
        """Jobs in `state` across all kinds."""
        return sum(n for (_, s), n in self.depth.items() if s == state)


def queue_stats(conn: Conn) -> QueueStats:
    """Read current depth and age (index-only on the partial indexes of the jobs table)."""
    rows = conn.execute(
        """SELECT kind, state, count(*) AS n,
                  EXTRACT(EPOCH FROM now() - min(run_after)
                      FILTER (WHERE state = 'queued' AND run_after <= now())) AS age
           FROM jobs WHERE state IN ('queued', 'running', 'failed', 'dead')
           GROUP BY kind, state"""
    ).fetchall()
    depth = {(r["kind"], r["state"]): int(r["n"]) for r in rows}
    ages: dict[str, float] = {}
    for r in rows:
        if r["age"] is not None:
            ages[r["kind"]] = max(ages.get(r["kind"], 0.0), float(r["age"]))
    # Same partial index as the claim path (queued jobs only), so it stays cheap.
    waiting = conn.execute(
        """SELECT kind, waiting_on, count(*) AS n FROM jobs
           WHERE state = 'queued' AND waiting_on IS NOT NULL GROUP BY kind, waiting_on"""
    ).fetchall()
    return QueueStats(
        depth=depth,
        oldest_age_s=ages,
        waiting_dependency={(r["kind"], r["waiting_on"]): int(r["n"]) for r in waiting},
    )


def export_queue_metrics(conn: Conn) -> QueueStats:
    """Refresh the queue gauges from the database and return the stats."""
    stats = queue_stats(conn)
    kinds = {k for k, _ in stats.depth} | set(stats.oldest_age_s)
    for kind in kinds:
        for state in ("queued", "running", "failed", "dead"):
            QUEUE_DEPTH.labels(kind=kind, state=state).set(stats.depth.get((kind, state), 0))
        QUEUE_OLDEST_AGE.labels(kind=kind).set(stats.oldest_age_s.get(kind, 0.0))
    # Zero the pairs seen before, so a wait that ended does not linger at its last count.
    _waiting_seen.update(stats.waiting_dependency)
    for kind, dependency in _waiting_seen:
        count = stats.waiting_dependency.get((kind, dependency), 0)
        QUEUE_WAITING_DEPENDENCY.labels(kind=kind, dependency=dependency).set(count)
    return stats


_waiting_seen: set[tuple[str, str]] = set()
