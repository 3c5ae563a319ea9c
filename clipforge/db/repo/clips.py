"""Clips of a video: replaced by the detect stage (clips a person edited or made stay), edited
and made through the API, listed with keyset pagination."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg.types.json import Jsonb

from clipforge.db.pool import Conn
from clipforge.pagination import Cursor, check_limit, split_page


@dataclass(frozen=True, slots=True)
class NewClip:
    """A clip chosen by the detect stage.

    Attributes:
        rank: 1 = best.
        sub_scores: named sub-scores (0..1) behind `score` (0..100).
        model_name / model_version: the scorer that chose it.
    """

    rank: int
    start_s: float
    end_s: float
    score: float
    sub_scores: dict[str, float]
    reason: str
    title: str
    hook: str
    model_name: str
    model_version: str


@dataclass(frozen=True, slots=True)
class StoredClip:
    """A stored clip."""

    id: uuid.UUID
    video_id: uuid.UUID
    rank: int
    start_s: float
    end_s: float
    score: float
    sub_scores: dict[str, float]
    reason: str
    title: str
    hook: str
    model_name: str
    model_version: str
    created_at: datetime
    # Last, with defaults: added by migration 0009 (clip edits).
    edited: bool = False
    origin: Literal["detect", "user"] = "detect"
    original_start_s: float | None = None
    original_end_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = {name: getattr(self, name) for name in self.__slots__}
        data["id"], data["video_id"] = str(self.id), str(self.video_id)
        data["created_at"] = self.created_at.isoformat()
        return data


def replace_clips(
    conn: Conn, *, video_id: uuid.UUID, clips: Sequence[NewClip], keep_edited: bool = True
) -> list[StoredClip]:
    """Replace the video's clips with `clips` (exports of replaced clips go by cascade).

    With `keep_edited`, clips a person edited or made stay, with their exports and caption
    corrections: a new clip overlapping one of them is left out (the person already chose that
    moment), and ranks are given again by score over both sets, detection's order on ties.
    """
    _lock_video(conn, video_id)
    conn.execute(
        "DELETE FROM clips WHERE video_id = %s AND NOT (%s AND edited)", (video_id, keep_edited)
    )
    kept = list_all_clips(conn, video_id=video_id)
    fresh = [c for c in clips if not any(_overlaps(c.start_s, c.end_s, k) for k in kept)]
    if not kept and not fresh:
        return []
    rank = {id(c): c.rank for c in fresh}  # detection's ranks when nothing was kept
    if kept:
        order: list[StoredClip | NewClip] = sorted([*kept, *fresh], key=lambda c: -c.score)
        rank = {id(c): i for i, c in enumerate(order, start=1)}
    # rank is unique per video: move the kept clips out of the way before numbering again.
    conn.execute("UPDATE clips SET rank = rank + %s WHERE video_id = %s", (_RANK_SHIFT, video_id))
    rows = [
        (
            uuid.uuid4(),
            video_id,
            rank[id(c)],
            c.start_s,
            c.end_s,
            c.score,
            Jsonb(c.sub_scores),
            c.reason,
            c.title,
            c.hook,
            c.model_name,
            c.model_version,
        )
        for c in fresh
    ]
    with conn.cursor() as cur:
        if rows:
            cur.executemany(
                """INSERT INTO clips (id, video_id, rank, start_s, end_s, score, sub_scores,
                                      reason, title, hook, model_name, model_version)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                rows,
            )
        if kept:
            cur.executemany(
                "UPDATE clips SET rank = %s WHERE id = %s", [(rank[id(k)], k.id) for k in kept]
            )
    return list_all_clips(conn, video_id=video_id)


# Above any real rank (a video has at most a few dozen clips), below int4's limit.
_RANK_SHIFT = 1_000_000


def _overlaps(start_s: float, end_s: float, clip: StoredClip) -> bool:
    return start_s < clip.end_s and clip.start_s < end_s


def _lock_video(conn: Conn, video_id: uuid.UUID) -> None:
    # Serialises every writer of a video's clips (detect commits, API edits): ranks are numbered
    # from what is stored, and two writers numbering at once would collide on (video_id, rank).
    # NO KEY UPDATE, the lock an UPDATE of the row takes: rows that reference the video (jobs,
    # clips) can still be inserted meanwhile.
    conn.execute("SELECT 1 FROM videos WHERE id = %s FOR NO KEY UPDATE", (video_id,))


def list_all_clips(conn: Conn, *, video_id: uuid.UUID) -> list[StoredClip]:
    """Every clip of a video by rank (a video has at most a few dozen)."""
    rows = conn.execute(
        "SELECT * FROM clips WHERE video_id = %s ORDER BY rank", (video_id,)
    ).fetchall()
    return [StoredClip(**r) for r in rows]


def list_clips(
    conn: Conn, *, video_id: uuid.UUID, limit: int, cursor: Cursor | None = None
) -> tuple[list[StoredClip], Cursor | None]:
    """One keyset page of a video's clips, oldest first, ties by id."""
    check_limit(limit)
    rows = conn.execute(
        """SELECT * FROM clips WHERE video_id = %(v)s
             AND (%(t)s::timestamptz IS NULL OR (created_at, id) > (%(t)s::timestamptz, %(i)s::uuid))
           ORDER BY created_at, id LIMIT %(n)s""",
        {
            "v": video_id,
            "n": limit + 1,
            "t": cursor.created_at if cursor else None,
            "i": cursor.id if cursor else None,
        },
    ).fetchall()
    return split_page([StoredClip(**r) for r in rows], limit)


def get_clip(conn: Conn, *, clip_id: uuid.UUID) -> StoredClip | None:
    """One clip."""
    row = conn.execute("SELECT * FROM clips WHERE id = %s", (clip_id,)).fetchone()
    return StoredClip(**row) if row else None


def get_clips(conn: Conn, *, clip_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, StoredClip]:
    """The clips with these ids that exist, by id, in one query."""
    rows = conn.execute("SELECT * FROM clips WHERE id = ANY(%s)", (list(clip_ids),)).fetchall()
    return {r["id"]: StoredClip(**r) for r in rows}


def lock_clip(conn: Conn, *, clip_id: uuid.UUID) -> StoredClip | None:
    """The clip, locked until the transaction ends (an edit in progress). A detect commit
    replacing the video's clips waits for it, then sees the clip `edited` and keeps it."""
    # Conflicts with a DELETE of the row, not with inserting exports that reference it.
    row = conn.execute("SELECT * FROM clips WHERE id = %s FOR NO KEY UPDATE", (clip_id,)).fetchone()
    return StoredClip(**row) if row else None


def set_clip_bounds(
    conn: Conn, *, clip_id: uuid.UUID, start_s: float, end_s: float
) -> StoredClip | None:
    """Move an existing clip's bounds: it becomes `edited`, and detection's first bounds are
    kept in `original_*_s` (a clip edited again keeps the first ones)."""
    row = conn.execute(
        """UPDATE clips SET start_s = %(s)s, end_s = %(e)s, edited = true,
                  original_start_s = CASE WHEN origin = 'detect'
                                          THEN coalesce(original_start_s, start_s) END,
                  original_end_s = CASE WHEN origin = 'detect'
                                        THEN coalesce(original_end_s, end_s) END
           WHERE id = %(id)s RETURNING *""",
        {"s": start_s, "e": end_s, "id": clip_id},
    ).fetchone()
    return StoredClip(**row) if row else None


def mark_edited(conn: Conn, *, clip_id: uuid.UUID) -> None:
    """Record that a person changed the clip (its caption words), so detection keeps it."""
    conn.execute("UPDATE clips SET edited = true WHERE id = %s", (clip_id,))


def create_user_clip(
    conn: Conn, *, video_id: uuid.UUID, start_s: float, end_s: float, title: str, hook: str
) -> StoredClip:
    """A clip a person chose: last in rank, score 0 (nothing scored it), `edited`."""
    _lock_video(conn, video_id)
    row = conn.execute(
        """INSERT INTO clips (id, video_id, rank, start_s, end_s, score, reason, title, hook,
                              model_name, model_version, edited, origin)
           SELECT %(id)s, %(v)s, coalesce(max(rank), 0) + 1, %(s)s, %(e)s, 0,
                  'chosen by a person', %(t)s, %(h)s, 'user', 'user', true, 'user'
           FROM clips WHERE video_id = %(v)s
           RETURNING *""",
        {"id": uuid.uuid4(), "v": video_id, "s": start_s, "e": end_s, "t": title, "h": hook},
    ).fetchone()
    assert row is not None
    return StoredClip(**row)
