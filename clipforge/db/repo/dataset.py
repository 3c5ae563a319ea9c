"""Reads of the training-data export: keyset pages of videos with clips, and their clips."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from clipforge.db.pool import Conn
from clipforge.db.repo.clips import StoredClip


def videos_with_clips_page(
    conn: Conn,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    since: datetime | None = None,
) -> list[tuple[datetime, uuid.UUID]]:
    """The next page of (created_at, id) of ready videos that have clips, oldest first."""
    rows = conn.execute(
        """SELECT v.created_at, v.id FROM videos v
           WHERE v.status = 'ready'
             AND EXISTS (SELECT 1 FROM clips c WHERE c.video_id = v.id)
             AND (%(since)s::timestamptz IS NULL OR v.created_at >= %(since)s::timestamptz)
             AND (%(t)s::timestamptz IS NULL
                  OR (v.created_at, v.id) > (%(t)s::timestamptz, %(i)s::uuid))
           ORDER BY v.created_at, v.id LIMIT %(n)s""",
        {
            "since": since,
            "t": after[0] if after else None,
            "i": after[1] if after else None,
            "n": limit,
        },
    ).fetchall()
    return [(r["created_at"], r["id"]) for r in rows]


def clips_of_videos(
    conn: Conn, *, video_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[StoredClip]]:
    """Every clip of these videos by rank, by video id, in one query."""
    rows = conn.execute(
        "SELECT * FROM clips WHERE video_id = ANY(%s) ORDER BY video_id, rank",
        (list(video_ids),),
    ).fetchall()
    out: dict[uuid.UUID, list[StoredClip]] = {}
    for r in rows:
        out.setdefault(r["video_id"], []).append(StoredClip(**r))
    return out
