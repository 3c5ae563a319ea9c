"""A speech video through import -> transcribe -> detect -> export on real Ray, Postgres, S3, ffmpeg."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clipforge.db.pool import Pool
from clipforge.db.repo.clips import list_all_clips
from clipforge.db.repo.exports import create_export
from clipforge.db.repo.transcripts import get_transcript
from clipforge.db.repo.videos import get_video
from clipforge.media import probe
from clipforge.metrics import VIDEO_SECONDS
from clipforge.queue import QueuePolicy, enqueue
from clipforge.settings import Settings
from clipforge.storage import create_store
from models.caption_formats import parse_srt
from pipelines.engine.worker import PipelineWorker
from tests.pipelines.conftest import upload_video


def _norm(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def test_speech_video_to_captioned_clip(
    worker: PipelineWorker,
    db: Pool,
    pipeline_settings: Settings,
    test_media: dict[str, Path],
    tmp_path: Path,
) -> None:
    def counted(stage: str) -> float:
        return float(VIDEO_SECONDS.labels(stage=stage)._value.get())

    before = {stage: counted(stage) for stage in ("import", "transcribe", "detect", "export")}
    video = upload_video(db, pipeline_settings, test_media["speech_short"])
    worker.run(until_idle=True)

    with db.connection() as conn:
        done = get_video(conn, video_id=video.id)
        transcript = get_transcript(conn, video_id=video.id)
        clips = list_all_clips(conn, video_id=video.id)
        assert done is not None and done.status == "ready", done
        assert transcript is not None and len(transcript.words) > 20
        assert clips and clips[0].rank == 1 and clips[0].model_version
        clip = clips[0]
        assert done.duration_s is not None
        for stage in ("import", "transcribe", "detect"):  # minutes-of-video counter
            assert counted(stage) - before[stage] == pytest.approx(done.duration_s, abs=0.05)
        export = create_export(
            conn, clip_id=clip.id, aspect_ratio="9:16", caption_style="karaoke", layout="speaker"
        )
        enqueue(
            conn,
            QueuePolicy.defaults(),
            kind="export",
            video_id=video.id,
            payload={"export_id": str(export.id)},
        )
        conn.commit()
    worker.run(until_idle=True)

    with db.connection() as conn:
        row = conn.execute("SELECT * FROM exports WHERE id = %s", (export.id,)).fetchone()
    assert row is not None and row["status"] == "ready" and row["layout"] == "speaker", row
    assert counted("export") == before["export"]  # an export is one clip, not the video
    store = create_store(pipeline_settings)
    mp4 = store.download_file(row["object_key"], tmp_path / "clip.mp4")
    info = probe(mp4)
    assert abs(info.duration_s - (clip.end_s - clip.start_s)) <= 0.1
    assert info.width is not None and info.height is not None
    assert abs(info.width / info.height - 9 / 16) < 0.01 and info.has_audio
    assert store.head(row["thumbnail_key"]) is not None

    srt_key = row["object_key"].removesuffix(".mp4") + ".srt"
    cues = parse_srt(store.get_bytes(srt_key).decode())
    caption_words = [w for cue in cues for w in _norm(cue.text)]
    span_words = [
        w
        for word in transcript.words
        if clip.start_s <= (word.start + word.end) / 2 < clip.end_s
        for w in _norm(word.text)
    ]
    assert caption_words == span_words
    assert all(0 <= cue.start < cue.end <= clip.end_s - clip.start_s + 1e-3 for cue in cues)
