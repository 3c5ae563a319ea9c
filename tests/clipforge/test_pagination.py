"""Keyset pagination of videos and cursor validation."""

from __future__ import annotations

import pytest

from clipforge.db.pool import Pool
from clipforge.db.repo.videos import list_videos, update_video
from clipforge.errors import ValidationFailed
from clipforge.pagination import Cursor
from tests.utils.factories import make_key, make_video


def test_pages_cover_every_video_once_newest_first(db: Pool) -> None:
    key, _ = make_key(db)
    other, _ = make_key(db, "other")
    made = [make_video(db, key) for _ in range(23)]
    make_video(db, other)
    seen = []
    cursor = None
    with db.connection() as conn:
        while True:
            page, cursor = list_videos(conn, owner_key_id=key.id, limit=10, cursor=cursor)
            seen += page
            if cursor is None:
                break
            cursor = Cursor.decode(cursor.encode())  # round trip through the client
    assert [v.id for v in seen] == [
        v.id for v in sorted(made, key=lambda v: (v.created_at, v.id), reverse=True)
    ]


def test_status_filter(db: Pool) -> None:
    key, _ = make_key(db)
    videos = [make_video(db, key) for _ in range(3)]
    with db.connection() as conn:
        update_video(conn, video_id=videos[1].id, status="ready")
        ready, _ = list_videos(conn, owner_key_id=key.id, limit=10, status="ready")
    assert [v.id for v in ready] == [videos[1].id]


@pytest.mark.parametrize("bad", ["", "not-base64!!", "eyJ0IjoxfQ", "x" * 500, "' OR 1=1 --"])
def test_bad_cursors_are_validation_errors(bad: str) -> None:
    with pytest.raises(ValidationFailed):
        Cursor.decode(bad)


@pytest.mark.parametrize("limit", [0, 101, -1])
def test_limit_is_bounded(db: Pool, limit: int) -> None:
    key, _ = make_key(db)
    with db.connection() as conn, pytest.raises(ValidationFailed):
        list_videos(conn, owner_key_id=key.id, limit=limit)


def test_update_refuses_unknown_columns(db: Pool) -> None:
    video = make_video(db)
    with db.connection() as conn, pytest.raises(ValueError):
        update_video(conn, video_id=video.id, **{"status = 'ready'; --": 1})
