"""Transcript, clip and export repositories: replace semantics and pagination."""

from __future__ import annotations

import psycopg
import pytest

from clipforge.db.pool import Pool
from clipforge.db.repo.clips import NewClip, get_clip, list_clips, replace_clips
from clipforge.db.repo.exports import create_export, get_export, list_exports, update_export
from clipforge.db.repo.pipeline_jobs import stage_demand
from clipforge.db.repo.transcripts import get_transcript, replace_transcript
from clipforge.db.repo.videos import create_video, delete_video, update_video
from clipforge.queue import QueuePolicy, enqueue
from clipforge.types import ModelInfo, Segment, Transcript, Word
from tests.utils.factories import make_video

_MODEL = ModelInfo("whisper-tiny.en", "1+sha.abc", "abc")


def _transcript(text: str) -> Transcript:
    words = tuple(
        Word(start=i * 0.5, end=i * 0.5 + 0.4, text=w, probability=0.9)
        for i, w in enumerate(text.split())
    )
    half = len(words) // 2
    segments = (
        Segment(
            start=words[0].start,
            end=words[half - 1].end,
            text=" ".join(w.text for w in words[:half]),
            words=words[:half],
        ),
        Segment(
            start=words[half].start,
            end=words[-1].end,
            text=" ".join(w.text for w in words[half:]),
            words=words[half:],
        ),
    )
    return Transcript(language="en", duration=words[-1].end + 1, segments=segments, model=_MODEL)


def _clip(rank: int, start: float) -> NewClip:
    return NewClip(
        rank=rank,
        start_s=start,
        end_s=start + 20,
        score=90 - rank,
        sub_scores={"hook": 0.5},
        reason="r",
        title="t",
        hook="h",
        model_name="scorer",
        model_version="v1",
    )


def test_transcript_round_trip_and_replace(db: Pool) -> None:
    video = make_video(db)
    first = _transcript("one two three four five six")
    second = _transcript("alpha beta gamma delta")
    with db.connection() as conn:
        replace_transcript(conn, video_id=video.id, transcript=first)
        stored = get_transcript(conn, video_id=video.id)
        assert (
            stored is not None and stored.words == first.words and stored.segments == first.segments
        )
        assert stored.model == _MODEL  # the weights' full sha256 comes back too
        replace_transcript(conn, video_id=video.id, transcript=second)
        again = get_transcript(conn, video_id=video.id)
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM transcript_words) AS w, (SELECT count(*) FROM transcript_segments) AS s"
        ).fetchone()
    assert again is not None and again.text == "alpha beta gamma delta"
    assert counts == {"w": 4, "s": 2}


def test_clips_replace_paginate_and_cascade(db: Pool) -> None:
    video = make_video(db)
    with db.connection() as conn:
        replace_clips(conn, video_id=video.id, clips=[_clip(r, r * 30.0) for r in range(1, 6)])
        clips = replace_clips(
            conn, video_id=video.id, clips=[_clip(r, r * 30.0) for r in range(1, 4)]
        )
        assert [c.rank for c in clips] == [1, 2, 3]
        page, cursor = list_clips(conn, video_id=video.id, limit=2)
        rest, end = list_clips(conn, video_id=video.id, limit=2, cursor=cursor)
        assert len(page) == 2 and len(rest) == 1 and end is None
        assert {c.id for c in page + rest} == {c.id for c in clips}
        export = create_export(conn, clip_id=clips[0].id, aspect_ratio="9:16", caption_style="bold")
        done = update_export(
            conn, export_id=export.id, status="ready", object_key="videos/x/e.mp4", duration_s=20.0
        )
        assert done is not None and done.status == "ready" and done.layout == "auto"
        assert list_exports(conn, clip_id=clips[0].id, limit=10)[0] == [done]
        split = create_export(
            conn, clip_id=clips[1].id, aspect_ratio="9:16", caption_style="bold", layout="split"
        )
        assert get_export(conn, export_id=split.id) == split and split.layout == "split"
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            create_export(
                conn, clip_id=clips[1].id, aspect_ratio="9:16", caption_style="bold", layout="pip"
            )  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            update_export(conn, export_id=export.id, clip_id=clips[1].id)
        delete_video(conn, video_id=video.id)
        assert get_clip(conn, clip_id=clips[0].id) is None
        assert get_export(conn, export_id=export.id) is None


def test_exports_take_the_4_5_preset_and_refuse_unknown_aspects(db: Pool) -> None:
    video = make_video(db)
    with db.connection() as conn:
        clip = replace_clips(conn, video_id=video.id, clips=[_clip(1, 30.0)])[0]
        portrait = create_export(conn, clip_id=clip.id, aspect_ratio="4:5", caption_style="auto")
        assert get_export(conn, export_id=portrait.id) == portrait
        assert portrait.aspect_ratio == "4:5"
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            create_export(conn, clip_id=clip.id, aspect_ratio="4:3", caption_style="auto")  # type: ignore[arg-type]


def test_stage_demand_counts_a_long_video_once_per_part(db: Pool) -> None:
    # The transcribe stage cuts a video into parts of about 600 s that run on actors of their
    # own: a 20-minute video is two units of work, a 26 s one (or one of unknown length) one.
    with db.connection() as conn, conn.transaction():
        for kind, duration in (
            ("transcribe", 1250.0),
            ("transcribe", 26.0),
            ("transcribe", None),
            ("detect", 1250.0),
        ):
            video = create_video(conn, owner_key_id=None, source_kind="upload")
            if duration is not None:
                update_video(conn, video_id=video.id, duration_s=duration)
            payload = {"video_id": str(video.id)}
            enqueue(conn, QueuePolicy.defaults(), kind=kind, video_id=video.id, payload=payload)
        kinds = ["transcribe", "detect", "export"]
        assert stage_demand(conn, kinds=kinds, worker_id="w") == {"transcribe": 3, "detect": 1}
        split = stage_demand(conn, kinds=kinds, worker_id="w", part_s={"transcribe": 600.0})
    assert split == {"transcribe": 4, "detect": 1}
