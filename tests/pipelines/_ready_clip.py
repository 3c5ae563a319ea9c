"""A video that is already ready (original stored, a transcript, a chosen clip), made directly
in the database and storage: the state in which only export jobs wait."""

from __future__ import annotations

import uuid
from pathlib import Path

from clipforge.db.pool import Pool
from clipforge.db.repo.clips import create_user_clip
from clipforge.db.repo.exports import create_export
from clipforge.db.repo.transcripts import replace_transcript
from clipforge.db.repo.videos import create_video, update_video
from clipforge.media import probe
from clipforge.queue import QueuePolicy, enqueue
from clipforge.settings import Settings
from clipforge.storage import create_store
from clipforge.storage.keys import original_key
from clipforge.types import ModelInfo, Segment, Transcript, Word


def ready_clip(pool: Pool, settings: Settings, source: Path) -> tuple[uuid.UUID, uuid.UUID]:
    """A ready video of `source` with one 6 s clip; returns (video id, clip id)."""
    info = probe(source)
    video_id = uuid.uuid4()
    key = original_key(video_id, "mp4")
    create_store(settings).put_file(key, source)
    words = tuple(Word(1.0 + i * 0.5, 1.4 + i * 0.5, f"word{i}", 0.9) for i in range(12))
    transcript = Transcript(
        "en", info.duration_s, (Segment(1.0, 6.9, "words", words),), ModelInfo("t", "1", "")
    )
    with pool.connection() as conn, conn.transaction():
        create_video(conn, owner_key_id=None, source_kind="upload", video_id=video_id)
        update_video(
            conn,
            video_id=video_id,
            status="ready",
            original_key=key,
            duration_s=info.duration_s,
            width=info.width,
            height=info.height,
        )
        replace_transcript(conn, video_id=video_id, transcript=transcript)
        clip = create_user_clip(
            conn, video_id=video_id, start_s=1.0, end_s=7.0, title="t", hook="h"
        )
    return video_id, clip.id


def queue_exports(pool: Pool, video_id: uuid.UUID, clip_id: uuid.UUID, n: int) -> list[uuid.UUID]:
    """`n` export jobs of the clip (small 9:16 renders); returns the export ids."""
    ids = []
    with pool.connection() as conn, conn.transaction():
        for _ in range(n):
            export = create_export(conn, clip_id=clip_id, aspect_ratio="9:16", caption_style="bold")
            enqueue(
                conn,
                QueuePolicy.defaults(),
                kind="export",
                video_id=video_id,
                payload={"export_id": str(export.id)},
            )
            ids.append(export.id)
    return ids
