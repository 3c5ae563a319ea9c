"""Caption corrections of clips: an overlay of word texts over the transcript (which is never
changed, so it stays the record of what the model heard)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from clipforge.db.pool import Conn


def get_word_edits(conn: Conn, *, clip_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[int, str]]:
    """Corrections of these clips, by clip id then transcript word index, in one query."""
    rows = conn.execute(
        "SELECT clip_id, word_idx, text FROM clip_word_edits WHERE clip_id = ANY(%s)",
        (list(clip_ids),),
    ).fetchall()
    edits: dict[uuid.UUID, dict[int, str]] = {}
    for row in rows:
        edits.setdefault(row["clip_id"], {})[row["word_idx"]] = row["text"]
    return edits


def replace_word_edits(conn: Conn, *, clip_id: uuid.UUID, edits: Mapping[int, str]) -> None:
    """Make `edits` (word index -> text) the clip's whole set of corrections."""
    conn.execute("DELETE FROM clip_word_edits WHERE clip_id = %s", (clip_id,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO clip_word_edits (clip_id, word_idx, text) VALUES (%s, %s, %s)",
            [(clip_id, idx, text) for idx, text in sorted(edits.items())],
        )
