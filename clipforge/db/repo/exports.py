"""Rendered clip exports (aspect ratio, caption style, layout), with their storage keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import sql

from clipforge.db.pool import Conn
from clipforge.pagination import Cursor, check_limit, split_page
from clipforge.types import AspectRatio, Layout

ExportStatus = Literal["queued", "rendering", "ready", "failed"]


@dataclass(frozen=True, slots=True)
class Export:
    """A stored export; `object_key` is set once the render is uploaded; `layout` says who the
    crop follows (clipforge.types.Layout)."""

    id: uuid.UUID
    clip_id: uuid.UUID
    aspect_ratio: AspectRatio
    caption_style: str
    status: ExportStatus
    object_key: str | None
    thumbnail_key: str | None
    duration_s: float | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    layout: Layout = "auto"  # last: the column was added by migration 0004

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = {name: getattr(self, name) for name in self.__slots__}
        data["id"], data["clip_id"] = str(self.id), str(self.clip_id)
        data["created_at"], data["updated_at"] = (
            self.created_at.isoformat(),
            self.updated_at.isoformat(),
        )
        return data


def create_export(
    conn: Conn,
    *,
    clip_id: uuid.UUID,
    aspect_ratio: AspectRatio,
    caption_style: str,
    layout: Layout = "auto",
) -> Export:
    """A queued export row."""
    row = conn.execute(
        """INSERT INTO exports (id, clip_id, aspect_ratio, caption_style, layout)
           VALUES (%s, %s, %s, %s, %s) RETURNING *""",
        (uuid.uuid4(), clip_id, aspect_ratio, caption_style, layout),
    ).fetchone()
    assert row is not None
    return Export(**row)


def get_export(conn: Conn, *, export_id: uuid.UUID) -> Export | None:
    """One export."""
    row = conn.execute("SELECT * FROM exports WHERE id = %s", (export_id,)).fetchone()
    return Export(**row) if row else None


_UPDATABLE = {"status", "object_key", "thumbnail_key", "duration_s", "error"}


def update_export(conn: Conn, *, export_id: uuid.UUID, **fields: Any) -> Export | None:
    """Set some of status / object_key / thumbnail_key / duration_s / error."""
    if not fields or set(fields) - _UPDATABLE:
        raise ValueError(f"cannot update export columns {sorted(set(fields) - _UPDATABLE)}")
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(n), sql.Placeholder(n)) for n in sorted(fields)
    )
    query = sql.SQL("UPDATE exports SET {}, updated_at = now() WHERE id = %(id)s RETURNING *")
    row = conn.execute(query.format(assignments), fields | {"id": export_id}).fetchone()
    return Export(**row) if row else None


def list_exports(
    conn: Conn, *, clip_id: uuid.UUID, limit: int, cursor: Cursor | None = None
) -> tuple[list[Export], Cursor | None]:
    """One keyset page of a clip's exports, oldest first."""
    check_limit(limit)
    rows = conn.execute(
        """SELECT * FROM exports WHERE clip_id = %(c)s
             AND (%(t)s::timestamptz IS NULL OR (created_at, id) > (%(t)s::timestamptz, %(i)s::uuid))
           ORDER BY created_at, id LIMIT %(n)s""",
        {
            "c": clip_id,
            "n": limit + 1,
            "t": cursor.created_at if cursor else None,
            "i": cursor.id if cursor else None,
        },
    ).fetchall()
    return split_page([Export(**r) for r in rows], limit)


def list_exports_for_video(conn: Conn, *, video_id: uuid.UUID) -> list[Export]:
    """Every export of every clip of a video, in one query."""
    rows = conn.execute(
        """SELECT e.* FROM exports e JOIN clips c ON c.id = e.clip_id
           WHERE c.video_id = %s ORDER BY c.rank, e.created_at, e.id""",
        (video_id,),
    ).fetchall()
    return [Export(**row) for row in rows]


def get_exports(conn: Conn, *, export_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Export]:
    """The exports with these ids that exist, by id, in one query."""
    rows = conn.execute("SELECT * FROM exports WHERE id = ANY(%s)", (list(export_ids),)).fetchall()
    return {r["id"]: Export(**r) for r in rows}


def set_exports_status(
    conn: Conn, *, export_ids: Sequence[uuid.UUID], status: ExportStatus
) -> None:
    """Set the status of many exports in one statement (a batch going to render)."""
    conn.execute(
        "UPDATE exports SET status = %s, updated_at = now() WHERE id = ANY(%s)",
        (status, list(export_ids)),
    )


def live_export_ids(conn: Conn, *, video_id: uuid.UUID) -> set[uuid.UUID]:
    """Ids of every export that still exists for the video's clips (the rest are orphans)."""
    rows = conn.execute(
        "SELECT e.id FROM exports e JOIN clips c ON c.id = e.clip_id WHERE c.video_id = %s",
        (video_id,),
    ).fetchall()
    return {r["id"] for r in rows}
