"""Minutes of video processed per minute of wall time: the queue worker on Ray Data versus a plain
sequential script (faster-whisper + the same scoring + ffmpeg, one video after another), in the
same run on the same machine; then the seconds to export one 45 s 9:16 clip with captions.

    python -m benchmarks.pipeline_throughput [--video speech_short|speech_long] [--count 4]

Both sides transcribe, score, select and render the top clip of every video. The worker side also
pays for what the product needs and the script skips: Postgres writes, object storage, the queue.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
import uuid
from pathlib import Path
from types import ModuleType

from benchmarks._db import scratch_database

_REPO = Path(__file__).resolve().parents[1]


def _media(name: str) -> Path:
    spec = importlib.util.spec_from_file_location(
        "make_test_media", _REPO / "scripts" / "make_test_media.py"
    )
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.build_all()[name])


def sequential(videos: list[Path], workdir: Path) -> float:
    """The baseline: one video after another in one process. Returns wall seconds."""
    from faster_whisper import WhisperModel

    from clipforge.media import decode_audio, probe, sample_frames
    from clipforge.types import ModelInfo, Segment, Transcript, Word
    from models.caption import build_cues
    from models.caption_formats import to_ass
    from models.highlight import HighlightScorer
    from models.select import select_clips
    from models.text_encoder import load_text_encoder
    from models.weights import default_asr_model_dir
    from pipelines.render import RenderSpec, render_clip

    started = time.perf_counter()
    whisper = WhisperModel(
        str(default_asr_model_dir()), device="cpu", compute_type="int8", local_files_only=True
    )
    scorer = HighlightScorer(load_text_encoder())
    for i, video in enumerate(videos):
        audio = decode_audio(video)
        segments, info = whisper.transcribe(audio, word_timestamps=True, beam_size=5)
        segs = tuple(
            Segment(
                s.start,
                s.end,
                s.text.strip(),
                tuple(Word(w.start, w.end, w.word.strip(), w.probability) for w in (s.words or [])),
            )
            for s in segments
        )
        transcript = Transcript(
            info.language, len(audio) / 16000, segs, ModelInfo("tiny.en", "1", "")
        )
        frames = list(sample_frames(video, 1.0, 160))
        clips = select_clips(scorer.score(transcript, audio=audio, frames=frames), transcript)
        if not clips:
            continue
        top = clips[0]
        ass = workdir / f"seq{i}.ass"
        ass.write_text(
            to_ass(build_cues(transcript.words, top.start, top.end), resolution=(134, 240))
        )
        meta = probe(video)
        assert meta.width and meta.height
        render_clip(
            video,
            workdir / f"seq{i}.mp4",
            RenderSpec(top.start, top.end, "9:16", short_side=134, ass_path=ass),
            src_size=(meta.width, meta.height),
        )
    return time.perf_counter() - started


def through_worker(videos: list[Path], workdir: Path) -> float:
    """ClipForge: videos enqueued through the database, one worker drains them. Wall seconds."""
    import ray

    from clipforge.db.pool import create_pool
    from clipforge.db.repo.videos import create_video
    from clipforge.queue import enqueue
    from clipforge.settings import load_settings
    from pipelines.config import load_pipeline_config
    from pipelines.worker import PipelineWorker

    config = load_pipeline_config(
        detect__top_k=1,
        detect__auto_export={"enabled": True, "top_n": 1},
        export__short_side=144,  # the stage caps it at the 134 px crop: no upscaling
        worker__idle_poll_s=0.2,
    )
    with scratch_database() as url:
        settings = load_settings(database_url=url, data_dir=workdir / "data")
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        with create_pool(settings, url, max_size=4) as pool:
            started = time.perf_counter()
            with pool.connection() as conn, conn.transaction():
                for video in videos:
                    row = create_video(
                        conn,
                        owner_key_id=None,
                        source_kind="file",
                        source_url=str(video),
                        video_id=uuid.uuid4(),
                    )
                    enqueue(conn, kind="import", video_id=row.id, payload={"video_id": str(row.id)})
            PipelineWorker(settings, config, pool, database_url=url).run(until_idle=True)
            elapsed = time.perf_counter() - started
            with pool.connection() as conn:
                ready = conn.execute(
                    "SELECT count(*) AS n FROM exports WHERE status = 'ready'"
                ).fetchone()
        ray.shutdown()
    assert ready is not None and ready["n"] == len(videos), f"only {ready} exports ready"
    return elapsed


def export_seconds(long_video: Path, workdir: Path) -> float:
    """Seconds to render one 45 s 9:16 clip with burned captions (720x1280)."""
    from clipforge.media import decode_audio, probe
    from models.asr import AsrModel
    from models.caption import build_cues
    from models.caption_formats import to_ass
    from pipelines.render import RenderSpec, output_size, render_clip

    start, end = 60.0, 105.0
    words = (
        AsrModel().transcribe(decode_audio(long_video)[int(start * 16000) : int(end * 16000)]).words
    )
    ass = workdir / "export.ass"
    ass.write_text(to_ass(build_cues(words, 0.0, end - start), resolution=output_size("9:16", 720)))
    meta = probe(long_video)
    assert meta.width and meta.height
    began = time.perf_counter()
    render_clip(
        long_video,
        workdir / "export.mp4",
        RenderSpec(start, end, "9:16", short_side=720, ass_path=ass),
        src_size=(meta.width, meta.height),
    )
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--video", default="speech_short", choices=["speech_short", "speech_long"])
    parser.add_argument("--count", type=int, default=4)
    args = parser.parse_args()
    video = _media(args.video)
    from clipforge.media import probe

    minutes = probe(video).duration_s * args.count / 60
    print(
        f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f} videos={args.count}x{args.video} "
        f"({minutes:.1f} min of video)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seq = sequential([video] * args.count, work)
        ours = through_worker([video] * args.count, work)
        export = export_seconds(_media("speech_long"), work)
    print(f"{'':28} {'wall s':>8} {'video min / wall min':>21}")
    print(f"{'sequential script':28} {seq:8.1f} {minutes / (seq / 60):21.2f}")
    print(f"{'clipforge worker (Ray Data)':28} {ours:8.1f} {minutes / (ours / 60):21.2f}")
    print(f"export one 45 s 9:16 captioned clip (720x1280): {export:.1f} s (target < 30 s)")


if __name__ == "__main__":
    main()
