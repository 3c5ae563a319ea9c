"""Queue questions the pipeline worker asks as a whole (its stages each claim on their own)."""

from __future__ import annotations

from collections.abc import Sequence

from clipforge.db.pool import Conn


def has_work(conn: Conn, *, kinds: Sequence[str], worker_id: str) -> bool:
    """True while a job of `kinds` is runnable now, running under `worker_id`, or has an expired
    lease waiting to be reaped: the worker is not idle yet.

    One snapshot: a stage that completes a job and enqueues the next in one transaction is seen
    either still running or already queued, never neither.
    """
    row = conn.execute(
        """SELECT EXISTS (
               SELECT 1 FROM jobs WHERE kind = ANY(%s) AND (
                   (state = 'queued' AND run_after <= now())
                   OR (state = 'running' AND (lease_owner = %s OR lease_expires_at < now())))
           ) AS busy""",
        (list(kinds), worker_id),
    ).fetchone()
    return bool(row and row["busy"])


def stage_demand(conn: Conn, *, kinds: Sequence[str], worker_id: str) -> dict[str, int]:
    """Jobs of each of `kinds` runnable now or running under `worker_id` (the work a stage's
    actor pool is sized for); kinds with none are absent."""
    rows = conn.execute(
        """SELECT kind, count(*) AS n FROM jobs WHERE kind = ANY(%s) AND (
               (state = 'queued' AND run_after <= now())
               OR (state = 'running' AND lease_owner = %s))
           GROUP BY kind""",
        (list(kinds), worker_id),
    ).fetchall()
    return {str(r["kind"]): int(r["n"]) for r in rows}
