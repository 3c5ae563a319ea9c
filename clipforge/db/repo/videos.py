"""Video rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import sql
from psycopg.types.json import Jsonb

from clipforge.db.pool import Conn
from clipforge.pagination import Cursor, check_limit, split_page

VideoStatus = Literal[
    "pending", "uploading", "importing", "transcribing", "detecting", "ready", "failed", "deleting"
]
SourceKind = Literal["url", "upload", "file"]


@dataclass(frozen=True, slots=True)
class Video:
    """A row of `videos`; media facts are None until import has probed the file."""

    id: uuid.UUID
    owner_key_id: uuid.UUID | None
    source_kind: SourceKind
    source_url: str | None
    status: VideoStatus
    error: str | None
    original_key: str | None
    size_bytes: int | None
    duration_s: float | None
    width: int | None
    height: int | None
    fps: float | None
    has_audio: bool | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (for the cache and the API)."""
        data = {name: getattr(self, name) for name in self.__slots__}
        for name in ("id", "owner_key_id"):
            data[name] = str(data[name]) if data[name] is not None else None
        for name in ("created_at", "updated_at"):
            data[name] = data[name].isoformat()
        return data


def create_video(
    conn: Conn,
    *,
    owner_key_id: uuid.UUID | None,
    source_kind: SourceKind,
    source_url: str | None = None,
    status: VideoStatus = "pending",
    video_id: uuid.UUID | None = None,
    metadata: dict[str, Any] | None = None,
) -> Video:
    """Insert a video row."""
    row = conn.execute(
        """INSERT INTO videos (id, owner_key_id, source_kind, source_url, status, metadata)
           VALUES (%s, %s, %s, %s, %s, %s) RETURNING *""",
        (
            video_id or uuid.uuid4(),
            owner_key_id,
            source_kind,
            source_url,
            status,
            Jsonb(metadata or {}),
        ),
    ).fetchone()
    assert row is not None
    return Video(**row)


def get_video(
    conn: Conn, *, video_id: uuid.UUID, owner_key_id: uuid.UUID | None = None
) -> Video | None:
    """One video; with `owner_key_id`, only if that key owns it."""
    row = conn.execute(
        """SELECT * FROM videos WHERE id = %s
           AND (%s::uuid IS NULL OR owner_key_id = %s::uuid)""",
        (video_id, owner_key_id, owner_key_id),
    ).fetchone()
    return Video(**row) if row else None


def get_videos(conn: Conn, *, video_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Video]:
    """The videos with these ids that exist, by id, in one query (a stage batch's inputs)."""
    rows = conn.execute("SELECT * FROM videos WHERE id = ANY(%s)", (list(video_ids),)).fetchall()
    return {r["id"]: Video(**r) for r in rows}


def list_videos(
    conn: Conn,
    *,
    owner_key_id: uuid.UUID,
    limit: int,
    cursor: Cursor | None = None,
    status: VideoStatus | None = None,
) -> tuple[list[Video], Cursor | None]:
    """Newest first, one keyset page; returns the rows and the cursor of the next page."""
    check_limit(limit)
    rows = conn.execute(
        """SELECT * FROM videos
           WHERE owner_key_id = %(owner)s
             AND (%(status)s::text IS NULL OR status = %(status)s::text)
             AND (%(t)s::timestamptz IS NULL OR (created_at, id) < (%(t)s::timestamptz, %(i)s::uuid))
           ORDER BY created_at DESC, id DESC
           LIMIT %(n)s""",
        {
            "owner": owner_key_id,
            "status": status,
            "n": limit + 1,
            "t": cursor.created_at if cursor else None,
            "i": cursor.id if cursor else None,
        },
    ).fetchall()
    return split_page([Video(**r) for r in rows], limit)


def update_video(conn: Conn, *, video_id: uuid.UUID, **fields: Any) -> Video | None:
    """Set the given columns (names checked against the table's columns)."""
    allowed = set(Video.__slots__) - {"id", "created_at", "updated_at"}
    unknown = set(fields) - allowed
    if unknown or not fields:
        raise ValueError(f"cannot update columns {sorted(unknown) or '(none)'}")
    # Column names come from the fixed allow-list above and are quoted as identifiers.
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name))
        for name in sorted(fields)
    )
    query = sql.SQL("UPDATE videos SET {}, updated_at = now() WHERE id = %(id)s RETURNING *")
    params = {n: Jsonb(v) if n == "metadata" else v for n, v in fields.items()} | {"id": video_id}
    row = conn.execute(query.format(assignments), params).fetchone()
    return Video(**row) if row else None


def merge_video_metadata(conn: Conn, *, video_id: uuid.UUID, patch: dict[str, Any]) -> None:
    """Set top-level keys of the video's metadata JSON, keeping the others."""
    conn.execute(
        "UPDATE videos SET metadata = metadata || %s, updated_at = now() WHERE id = %s",
        (Jsonb(patch), video_id),
    )


def delete_video(conn: Conn, *, video_id: uuid.UUID) -> bool:
    """Delete a video and (by cascade) its jobs, transcript, clips and exports."""
    return conn.execute("DELETE FROM videos WHERE id = %s", (video_id,)).rowcount == 1
