"""Queries of backfill runs: the keyset-paged selection of videos, a page's job outcomes, and the
run records the Ray Data engine writes (one `jobs` row per run and video, as the queue engine
keeps, so both engines resume, count and summarise a run the same way)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from psycopg.types.json import Jsonb

from clipforge.db.pool import Conn


def select_backfill_page(
    conn: Conn,
    *,
    since: datetime | None,
    video_ids: Sequence[uuid.UUID],
    after: tuple[datetime, uuid.UUID] | None,
    stale_version: str | None,
    limit: int,
    stale_digest: str | None = None,
    exported: bool | None = None,
) -> list[tuple[datetime, uuid.UUID]]:
    """The next page of (created_at, id) of finished videos, oldest first.

    With `stale_version`, only videos without clips or with a clip whose scorer version (the
    part of `model_version` before the first "+") differs from it, or (with `stale_digest`)
    whose scorer config hash (the part after the last "+") differs from that; clips a person
    edited or made keep their version and never make a video stale. `exported`
    False keeps out videos with exports (re-detecting would delete them), True selects only
    those, None ignores exports.
    """
    rows = conn.execute(
        """SELECT v.created_at, v.id FROM videos v
           WHERE v.status IN ('ready', 'failed')
             AND (%(since)s::timestamptz IS NULL OR v.created_at >= %(since)s::timestamptz)
             AND (cardinality(%(ids)s::uuid[]) = 0 OR v.id = ANY(%(ids)s::uuid[]))
             AND (%(t)s::timestamptz IS NULL OR (v.created_at, v.id) > (%(t)s::timestamptz, %(i)s::uuid))
             AND (%(version)s::text IS NULL OR EXISTS (
                    SELECT 1 FROM clips c WHERE c.video_id = v.id AND NOT c.edited
                    AND (split_part(c.model_version, '+', 1) <> %(version)s::text
                         OR (%(digest)s::text IS NOT NULL
                             AND substring(c.model_version FROM '[^+]*$') <> %(digest)s::text)))
                  OR NOT EXISTS (SELECT 1 FROM clips c WHERE c.video_id = v.id))
             AND (%(exported)s::boolean IS NULL OR %(exported)s::boolean = EXISTS (
                    SELECT 1 FROM exports e JOIN clips c ON c.id = e.clip_id
                    WHERE c.video_id = v.id))
           ORDER BY v.created_at, v.id LIMIT %(n)s""",
        {
            "since": since,
            "ids": list(video_ids),
            "n": limit,
            "t": after[0] if after else None,
            "i": after[1] if after else None,
            "version": stale_version,
            "digest": stale_digest,
            "exported": exported,
        },
    ).fetchall()
    return [(r["created_at"], r["id"]) for r in rows]


def backfill_job_states(
    conn: Conn, *, run: str, video_ids: Sequence[uuid.UUID] | None = None
) -> dict[str, int]:
    """Number of jobs of backfill run `run` per state, over the given videos (None: all).

    A run has one job per video and stage (its idempotency key), so each video counts once
    however often the run was resumed.
    """
    rows = conn.execute(
        """SELECT state, count(*) AS n FROM jobs
           WHERE run_id = %s AND (%s::uuid[] IS NULL OR video_id = ANY(%s::uuid[]))
           GROUP BY state""",
        (
            run,
            None if video_ids is None else list(video_ids),
            None if video_ids is None else list(video_ids),
        ),
    ).fetchall()
    return {r["state"]: int(r["n"]) for r in rows}


def run_finished(conn: Conn, *, run: str) -> bool:
    """True once no job of the run is queued (runnable or waiting out a retry delay) or running."""
    row = conn.execute(
        """SELECT NOT EXISTS (SELECT 1 FROM jobs WHERE run_id = %s
                                AND state IN ('queued', 'running')) AS done""",
        (run,),
    ).fetchone()
    return bool(row and row["done"])


def record_backfill_outcome(
    conn: Conn,
    *,
    run: str,
    kind: str,
    video_id: uuid.UUID,
    idempotency_key: str,
    payload: dict[str, object],
    error: str | None,
) -> bool:
    """Record one video's outcome in run `run` (a finished `jobs` row, never claimable).

    Returns False, and changes nothing, when the run already succeeded for this video: a
    retried Ray Data block or a second driver of the same run must not write its outputs
    again. The row stays locked until the caller's transaction ends, so two drivers of one
    run never both see "not yet succeeded" and both write. Call it before the outputs, in
    their transaction.
    """
    row = conn.execute(
        """INSERT INTO jobs (kind, payload, video_id, idempotency_key, state, attempts, run_id,
                             last_error, started_at, finished_at)
           VALUES (%(kind)s, %(payload)s, %(video)s, %(key)s, %(state)s, 1, %(run)s, %(error)s,
                   now(), now())
           ON CONFLICT (idempotency_key) DO UPDATE
               SET state = EXCLUDED.state, attempts = jobs.attempts + 1,
                   last_error = COALESCE(EXCLUDED.last_error, jobs.last_error),
                   lease_owner = NULL, lease_expires_at = NULL,
                   finished_at = now(), updated_at = now()
               WHERE jobs.state <> 'succeeded'
           RETURNING id""",
        {
            "kind": kind,
            "payload": Jsonb(payload),
            "video": video_id,
            "key": idempotency_key,
            "state": "failed" if error else "succeeded",
            "run": run,
            "error": error,
        },
    ).fetchone()
    return row is not None


def succeeded_videos(conn: Conn, *, run: str, kind: str) -> set[uuid.UUID]:
    """Videos whose job of `kind` in run `run` succeeded (a resumed run skips them)."""
    rows = conn.execute(
        "SELECT video_id FROM jobs WHERE run_id = %s AND kind = %s AND state = 'succeeded'",
        (run, kind),
    ).fetchall()
    return {r["video_id"] for r in rows if r["video_id"] is not None}
