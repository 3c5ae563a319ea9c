"""Checks that a restored (or live) installation is whole: rows and objects agree.

A row "references" an object when the application will read it: a video's original and the
audio track import stored beside it, a ready export's video and thumbnail and the caption
sidecars the export stage writes next to the video. A reference to a missing object is a broken
video or a 404 on a clip; an object no row references is only wasted space, so it is reported
but not an error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg

from clipforge.db.repo.ops import ready_export_objects, stored_originals
from clipforge.ops.pg_backup import table_counts
from clipforge.storage import ObjectStore
from clipforge.storage.keys import audio_key

SIDECARS = ("srt", "vtt", "ass")


@dataclass(frozen=True, slots=True)
class Reference:
    """One object a row needs: the key and the row that needs it (`table:id:column`)."""

    key: str
    row: str


def referenced_objects(conn: psycopg.Connection[Any]) -> Iterator[Reference]:
    """Every object key the rows of the database reference (stored or derived)."""
    for video_id, key in stored_originals(conn):
        yield Reference(key, f"videos:{video_id}:original_key")
        yield Reference(audio_key(video_id), f"videos:{video_id}:audio (beside the original)")
    for export_id, video_key, thumb in ready_export_objects(conn):
        yield Reference(video_key, f"exports:{export_id}:object_key")
        if thumb:
            yield Reference(thumb, f"exports:{export_id}:thumbnail_key")
        stem = video_key.rsplit(".", 1)[0]
        for ext in SIDECARS:
            yield Reference(f"{stem}.{ext}", f"exports:{export_id}:{ext} captions")


def missing_objects(
    conn: psycopg.Connection[Any], store: ObjectStore, *, workers: int = 8
) -> tuple[int, list[Reference]]:
    """(references checked, references whose object is absent from `store`)."""
    refs = list(referenced_objects(conn))
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="verify") as pool:
        present = list(pool.map(lambda r: store.head(r.key) is not None, refs))
    return len(refs), [r for r, ok in zip(refs, present, strict=True) if not ok]


def count_differences(
    conn: psycopg.Connection[Any], expected: Mapping[str, int]
) -> dict[str, tuple[int | None, int | None]]:
    """Tables whose row count differs from `expected`: name -> (expected, found)."""
    found = table_counts(conn)
    return {
        name: (expected.get(name), found.get(name))
        for name in sorted(set(expected) | set(found))
        if expected.get(name) != found.get(name)
    }
