"""Clips of a video: replaced as a set by the detect stage, listed with keyset pagination."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
class Clip:
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

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = {name: getattr(self, name) for name in self.__slots__}
        data["id"], data["video_id"] = str(self.id), str(self.video_id)
        data["created_at"] = self.created_at.isoformat()
        return data


def replace_clips(conn: Conn, *, video_id: uuid.UUID, clips: Sequence[NewClip]) -> list[Clip]:
    """Replace all clips of the video (their exports go with them by cascade)."""
    conn.execute("DELETE FROM clips WHERE video_id = %s", (video_id,))
    if not clips:
        return []
    rows = [
        (
            uuid.uuid4(),
            video_id,
            c.rank,
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
        for c in clips
    ]
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO clips (id, video_id, rank, start_s, end_s, score, sub_scores, reason, title,
                                  hook, model_name, model_version)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            rows,
        )
    return list_all_clips(conn, video_id=video_id)


def list_all_clips(conn: Conn, *, video_id: uuid.UUID) -> list[Clip]:
    """Every clip of a video by rank (a video has at most a few dozen)."""
    rows = conn.execute(
        "SELECT * FROM clips WHERE video_id = %s ORDER BY rank", (video_id,)
    ).fetchall()
    return [Clip(**r) for r in rows]


def list_clips(
    conn: Conn, *, video_id: uuid.UUID, limit: int, cursor: Cursor | None = None
) -> tuple[list[Clip], Cursor | None]:
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
    return split_page([Clip(**r) for r in rows], limit)


def get_clip(conn: Conn, *, clip_id: uuid.UUID) -> Clip | None:
    """One clip."""
    row = conn.execute("SELECT * FROM clips WHERE id = %s", (clip_id,)).fetchone()
    return Clip(**row) if row else None


def get_clips(conn: Conn, *, clip_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Clip]:
    """The clips with these ids that exist, by id, in one query."""
    rows = conn.execute("SELECT * FROM clips WHERE id = ANY(%s)", (list(clip_ids),)).fetchall()
    return {r["id"]: Clip(**r) for r in rows}
