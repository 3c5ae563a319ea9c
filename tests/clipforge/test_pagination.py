"""Keyset pagination of videos and cursor validation."""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- property tests of the codec (issue #14) ---------------------------------------------------

_aware = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
)


@settings(max_examples=200, deadline=None)
@given(created=_aware, ident=st.uuids())
def test_cursor_round_trips_and_stays_url_safe(created: datetime, ident: uuid.UUID) -> None:
    token = Cursor(created, ident).encode()
    assert len(token) <= 200 and re.fullmatch(r"[A-Za-z0-9_-]+", token)
    back = Cursor.decode(token)
    # The same instant (PEP 495: an ambiguous wall time never compares equal across zones).
    assert back.created_at.timestamp() == created.timestamp() and back.id == ident


@settings(max_examples=300, deadline=None)
@given(token=st.text(max_size=300) | st.binary(max_size=200).map(lambda b: b.hex()))
def test_any_client_string_decodes_or_is_a_validation_error(token: str) -> None:
    try:
        cursor = Cursor.decode(token)
    except ValidationFailed:
        return
    assert cursor.created_at.tzinfo is not None  # nothing naive reaches a SQL comparison


@settings(max_examples=200, deadline=None)
@given(created=_aware, ident=st.uuids(), data=st.data())
def test_tampered_cursors_never_raise_anything_else(
    created: datetime, ident: uuid.UUID, data: st.DataObject
) -> None:
    token = Cursor(created, ident).encode()
    position = data.draw(st.integers(0, len(token) - 1))
    char = data.draw(st.characters(codec="ascii"))
    tampered = token[:position] + char + token[position + 1 :]
    with contextlib.suppress(ValidationFailed):  # anything but ValidationFailed fails the test
        Cursor.decode(tampered)
