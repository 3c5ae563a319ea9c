"""Queue questions the pipeline worker asks as a whole (its stages each claim on their own)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


def stage_demand(
    conn: Conn,
    *,
    kinds: Sequence[str],
    worker_id: str,
    part_s: Mapping[str, float] | None = None,
) -> dict[str, int]:
    """Work of each of `kinds` runnable now or running under `worker_id` (what a stage's actor
    pool is sized for); kinds with none are absent.

    A job counts once, or, for a kind in `part_s`, once per part its stage cuts the video into
    (its duration over that many seconds, rounded, at least one: the stage's `split_parts`),
    since each part can run on an actor of its own.
    """
    part_s = part_s or {}
    rows = conn.execute(
        """SELECT j.kind,
                  sum(CASE WHEN s.part_s IS NULL THEN 1
                           ELSE greatest(1, round(coalesce(v.duration_s, 0) / s.part_s)) END) AS n
           FROM jobs j
           LEFT JOIN videos v ON v.id = j.video_id
           LEFT JOIN unnest(%s::text[], %s::float8[]) AS s(kind, part_s) ON s.kind = j.kind
           WHERE j.kind = ANY(%s) AND (
               (j.state = 'queued' AND j.run_after <= now())
               OR (j.state = 'running' AND j.lease_owner = %s))
           GROUP BY j.kind""",
        (list(part_s), list(part_s.values()), list(kinds), worker_id),
    ).fetchall()
    return {str(r["kind"]): int(r["n"]) for r in rows}
