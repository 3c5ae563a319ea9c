"""Processed videos made without running the pipeline, for backfill benchmarks and tests.

Re-scoring N videos needs N videos that went through import and transcribe. Running ASR on
hundreds of them would measure ASR, not the backfill, so each video here gets what import and
transcribe would have stored: a real source (one shared object: the backfill only reads it),
its own 16 kHz audio track, a word-timed transcript synthesized from the medium's script
(words spread evenly over each sentence, speakers alternating by sentence) and clips from an
older scorer, all inserted straight through the repositories.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

from clipforge.db.pool import Pool
from clipforge.db.repo.clips import NewClip, replace_clips
from clipforge.db.repo.transcripts import replace_transcript
from clipforge.db.repo.videos import create_video, update_video
from clipforge.media import probe
from clipforge.media.track import extract_track
from clipforge.settings import Settings
from clipforge.storage import create_store
from clipforge.storage.keys import audio_key
from clipforge.types import ModelInfo, Segment, Transcript, Word

OLD_VERSION = "highlight-v1+synthesized+000000000000"


def synthesized_transcript(script: Path, duration: float) -> Transcript:
    """A transcript from a `[{start, end, text}]` script: its words spread over each sentence."""
    segments = []
    for n, sentence in enumerate(json.loads(script.read_text())):
        texts = sentence["text"].split()
        step = (sentence["end"] - sentence["start"]) / len(texts)
        words = tuple(
            Word(
                start=round(sentence["start"] + i * step, 3),
                end=round(sentence["start"] + (i + 1) * step, 3),
                text=text,
                speaker=n % 2,
            )
            for i, text in enumerate(texts)
        )
        segments.append(Segment(sentence["start"], sentence["end"], sentence["text"], words))
    return Transcript(
        language="en",
        duration=duration,
        segments=tuple(segments),
        model=ModelInfo(name="synthesized", version="1", sha256=""),
    )


def add_processed_videos(
    pool: Pool, settings: Settings, media: Path, script: Path, count: int
) -> list[uuid.UUID]:
    """`count` ready videos of `media` with a synthesized transcript and one old-scorer clip."""
    store = create_store(settings)
    duration = float(probe(media).duration_s or 0.0)
    transcript = synthesized_transcript(script, duration)
    source = f"benchmarks/sources/{uuid.uuid4()}{media.suffix}"
    store.put_file(source, media)
    ids: list[uuid.UUID] = []
    with tempfile.TemporaryDirectory(prefix="cf-processed-") as tmp:
        track = extract_track(media, Path(tmp) / "audio.flac")
        for _ in range(count):
            video_id = uuid.uuid4()
            store.put_file(audio_key(video_id), track)
            with pool.connection() as conn, conn.transaction():
                create_video(conn, owner_key_id=None, source_kind="upload", video_id=video_id)
                update_video(
                    conn,
                    video_id=video_id,
                    status="ready",
                    original_key=source,
                    duration_s=duration,
                    has_audio=True,
                )
                replace_transcript(conn, video_id=video_id, transcript=transcript)
                replace_clips(conn, video_id=video_id, clips=[_old_clip(duration)])
            ids.append(video_id)
    return ids


def _old_clip(duration: float) -> NewClip:
    return NewClip(
        rank=1,
        start_s=0.0,
        end_s=min(duration, 20.0),
        score=50.0,
        sub_scores={"hook": 0.5},
        reason="older scorer",
        title="Old title",
        hook="Old hook",
        model_name="clipforge-highlight",
        model_version=OLD_VERSION,
    )
