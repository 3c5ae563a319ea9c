"""Minutes of video processed per minute of wall time: the queue worker on warm Ray actors versus
a plain sequential script (faster-whisper + the same scoring + ffmpeg, one video after another),
in the same run on the same machine; then the seconds to export one 45 s 9:16 clip with captions.

    python -m benchmarks.pipeline_throughput [--video speech_short|speech_long|long-2h|long-2h-2p] [--count 4]
    python -m benchmarks.pipeline_throughput --export-bench [--reps 3]

Every side transcribes, scores, selects and renders the top clip of every video. The sequential
script is the bare minimum (faster-whisper, the scorer, a motion-following crop); the same-output
loop is `clipforge.process(local=True)` per video, which makes what the worker makes (speaker
turns, face-tracked crop, loudness, poster and caption files) with no database, queue, object
store or Ray. The worker also pays for Postgres writes, object storage and the queue; its cold
start (actor processes, model loads) is inside its time, as the loops' model loads are.
`--video long-2h` (a 2-hour source looped from speech_long, one voice) or `long-2h-2p` (two_speakers
looped: two voices taking turns, so the speaker turns are clustered over two hours) runs only the
worker and reports its peak resident memory, driver and stage actors together.
`--export-bench` times only the export of a 45 s 9:16 clip of a face video (`face_pan` looped) at
the size before output presets (the crop's own), 720x1280 and the 1080x1920 preset (two x264
presets), with face tracking and with the motion-only crop, in one run, side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import resource
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from benchmarks._db import scratch_database

_REPO = Path(__file__).resolve().parents[1]


def _media(name: str) -> Path:
    spec = importlib.util.spec_from_file_location(
        "make_test_media", _REPO / "scripts" / "make_test_media.py"
    )
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if name == "long-2h":
        return Path(module.build_long())
    if name == "long-2h-2p":
        return Path(module.build_long_two_speakers())
    if name == "face_pan_long":
        return Path(module.build_face_pan_long())
    return Path(module.build_all()[name])


class PeakRss:
    """Samples the resident memory of this process and of the worker's stage actors."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s = every_s
        self.driver = 0
        self.actors: dict[str, int] = {}
        self.total = 0
        # Set once the worker exists: its actors' pids by name (from their reports).
        self.actor_pids: Callable[[], dict[str, int]] = dict
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(self.every_s):
            driver = me.memory_info().rss
            actors: dict[str, int] = {}
            for name, pid in self.actor_pids().items():
                with contextlib.suppress(psutil.Error):
                    actors[name] = psutil.Process(pid).memory_info().rss
            self.driver = max(self.driver, driver)
            for name, rss in actors.items():
                self.actors[name] = max(self.actors.get(name, 0), rss)
            self.total = max(self.total, driver + sum(actors.values()))


def _tree_cpu() -> dict[int, float]:
    """CPU seconds so far of this process and of every process under it, by pid; a finished
    child's (an ffmpeg run, a killed actor) are in its parent's `children_*` fields."""
    import psutil

    me = psutil.Process()
    seconds: dict[int, float] = {}
    for proc in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            seconds[proc.pid] = t.user + t.system + t.children_user + t.children_system
    return seconds


class TreeCpu:
    """CPU seconds used while open by this process and the processes under it: the script or
    loop and its ffmpeg runs; the worker's driver, Ray's daemons, the stage actors and their
    ffmpeg runs (Postgres, a server of its own, is not counted). Unlike wall time, hardly moved
    by the machine's load, and divided by the cores it bounds the wall time from below."""

    def __init__(self) -> None:
        self.seconds = float("nan")  # until closed (a run that was skipped stays NaN)
        self._start: dict[int, float] = {}

    def __enter__(self) -> TreeCpu:
        self._start = _tree_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        end = _tree_cpu()
        self.seconds = sum(max(0.0, s - self._start.get(pid, 0.0)) for pid, s in end.items())


def sequential(videos: list[Path], workdir: Path) -> float:
    """The baseline: one video after another in one process. Returns wall seconds."""
    from faster_whisper import WhisperModel

    from clipforge.media import decode_audio, probe, sample_frames
    from clipforge.settings import get_settings
    from clipforge.types import ModelInfo, Segment, Transcript, Word
    from models.caption import build_cues
    from models.caption_formats import to_ass
    from models.highlight import HighlightScorer
    from models.select import select_clips
    from models.text_encoder import load_text_encoder
    from models.weights import shipped_asr_model
    from pipelines.render.clip import RenderSpec, render_clip

    settings = get_settings()
    # The same weights as the pipeline's ASR stage (ASR_MODEL, default base).
    asr_dir, asr_name, _ = shipped_asr_model(settings.asr_model, settings.data_dir)
    started = time.perf_counter()
    whisper = WhisperModel(
        str(settings.asr_model_dir or asr_dir),
        device="cpu",
        compute_type="int8",
        local_files_only=True,
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
            info.language, len(audio) / 16000, segs, ModelInfo(asr_name, "1", "")
        )
        frames = list(sample_frames(video, 1.0, 160))
        clips = select_clips(scorer.score(transcript, audio=audio, frames=frames), transcript)
        if not clips:
            continue
        top = clips[0]
        ass = workdir / f"seq{i}.ass"
        ass.write_text(
            to_ass(build_cues(transcript.words, top.start, top.end), resolution=(144, 256))
        )
        meta = probe(video)
        assert meta.width and meta.height
        render_clip(
            video,
            workdir / f"seq{i}.mp4",
            RenderSpec(top.start, top.end, "9:16", short_side=144, ass_path=ass),
            src_size=(meta.width, meta.height),
        )
    return time.perf_counter() - started


def same_output_loop(videos: list[Path], workdir: Path) -> float:
    """The plain loop that makes what the worker makes: `clipforge.process(local=True)` on one
    video after another in this process (the same models, speaker turns, face-tracked render,
    loudness, poster and caption files; no database, queue, object store or Ray). Its models
    load inside the time, once, as a script's would. Returns wall seconds."""
    from pipelines.config import load_pipeline_config
    from pipelines.local.notebook import process, unload_models

    # The shipped config at a draft size, as the worker's side renders.
    config = load_pipeline_config(export__short_side=144).save(workdir / "loop-pipeline.yaml")
    unload_models()  # cold, as the worker's side is
    started = time.perf_counter()
    for i, video in enumerate(videos):
        process(
            video, workdir / f"loop{i}", top_k=1, local=True, config_path=config, overwrite=True
        )
    return time.perf_counter() - started


def through_worker(
    videos: list[Path],
    workdir: Path,
    *,
    top_k: int = 1,
    auto_export: bool = True,
    warm: bool = False,
    rss: PeakRss | None = None,
    startup: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    cpu: TreeCpu | None = None,
) -> tuple[float, dict[str, float]]:
    """ClipForge: videos enqueued through the database, one worker drains them.

    Returns wall seconds and the models the worker loaded. Cold (default), the worker's start-up
    (actor processes, model loads) is inside the time, as the script's model loading is; `warm`
    starts the worker and waits for its models first, as a long-running worker is when videos
    arrive. `startup` receives the start-up breakdown: when each pool's actors were asked for
    and had loaded their models, and when each stage's first and last jobs ran, in seconds
    from the enqueue. `cpu` is opened over the same span as the wall time.
    """
    import ray

    from clipforge.db.pool import create_pool
    from clipforge.db.repo.videos import create_video
    from clipforge.metrics import MODEL_LOADS
    from clipforge.queue import enqueue
    from clipforge.settings import load_settings
    from pipelines.config import load_pipeline_config
    from pipelines.engine.worker import PipelineWorker

    config = load_pipeline_config(
        detect__top_k=top_k,
        detect__auto_export={"enabled": auto_export, "top_n": 1},
        export__short_side=144,  # a draft size, as the sequential script renders
        worker__idle_poll_s=0.2,
        **(overrides or {}),
    )
    before = {m: MODEL_LOADS.labels(model=m)._value.get() for m in ("asr", "text_encoder")}
    with scratch_database() as url:
        settings = load_settings(database_url=url, data_dir=workdir / "data")
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        with create_pool(settings, url, max_size=8) as pool:
            with PipelineWorker(settings, config, pool, database_url=url) as worker:
                if rss is not None:
                    pids = worker.telemetry.pids
                    rss.actor_pids = lambda: {f"{s}-{i}": p for (s, i), p in dict(pids).items()}
                if warm:
                    worker.wait_ready()
                with cpu if cpu is not None else TreeCpu():
                    started = time.perf_counter()
                    t0 = time.monotonic()
                    with pool.connection() as conn, conn.transaction():
                        enqueued = conn.execute("SELECT now() AS t").fetchone()
                        for video in videos:
                            row = create_video(
                                conn,
                                owner_key_id=None,
                                source_kind="file",
                                source_url=str(video),
                                video_id=uuid.uuid4(),
                            )
                            payload = {"video_id": str(row.id)}
                            enqueue(
                                conn, worker.policy, kind="import", video_id=row.id, payload=payload
                            )
                    worker.run(until_idle=True)
                    elapsed = time.perf_counter() - started
                if startup is not None:
                    assert enqueued is not None
                    startup += _startup(worker, pool, t0, enqueued["t"])
            with pool.connection() as conn:
                ready = conn.execute(
                    "SELECT (SELECT count(*) FROM exports WHERE status = 'ready') AS exports,"
                    " (SELECT count(*) FROM videos WHERE status = 'ready') AS videos,"
                    " (SELECT count(DISTINCT speaker) FROM transcript_words) AS speakers"
                ).fetchone()
        ray.shutdown()
    assert ready is not None and ready["videos"] == len(videos), f"only {ready} ready"
    assert not auto_export or ready["exports"] == len(videos), f"only {ready} ready"
    loads = {m: MODEL_LOADS.labels(model=m)._value.get() - n for m, n in before.items()}
    loads["speakers found"] = ready["speakers"]  # distinct speaker ids over the transcripts
    return elapsed, loads


def _startup(worker: Any, pool: Any, t0: float, enqueued: Any) -> list[str]:
    """Lines of the start-up breakdown (seconds after the enqueue)."""
    lines = []
    for actors in worker.pools:
        for start in sorted(actors.starts, key=lambda s: s.requested):
            if start.ready is None:  # removed before it had loaded
                continue
            lines.append(
                f"  {start.stage:10} actor asked for at {start.requested - t0:5.1f} s, "
                f"loaded at {start.ready - t0:5.1f} s ({start.ready - start.requested:.1f} s)"
            )
    with pool.connection() as conn:
        rows = conn.execute(
            """SELECT kind, EXTRACT(EPOCH FROM min(started_at) - %(t)s) AS first_start,
                      EXTRACT(EPOCH FROM min(finished_at) - %(t)s) AS first_done,
                      EXTRACT(EPOCH FROM max(finished_at) - %(t)s) AS last_done
               FROM jobs WHERE kind <> 'webhook' GROUP BY kind ORDER BY min(started_at)""",
            {"t": enqueued},
        ).fetchall()
    for r in rows:
        lines.append(
            f"  {r['kind']:10} jobs: first claimed {float(r['first_start']):5.1f} s, first done "
            f"{float(r['first_done']):5.1f} s, last done {float(r['last_done']):5.1f} s"
        )
    return lines


def export_seconds(long_video: Path, workdir: Path) -> float:
    """Seconds to render one 45 s 9:16 clip with burned captions at the preset size
    (1080x1920) with the shipped x264 preset."""
    from clipforge.media import decode_audio, probe
    from models.asr import AsrModel
    from models.caption import build_cues
    from models.caption_formats import cue_options, to_ass
    from pipelines.config import load_pipeline_config
    from pipelines.render.clip import RenderSpec, output_size, render_clip

    start, end = 60.0, 105.0
    words = (
        AsrModel().transcribe(decode_audio(long_video)[int(start * 16000) : int(end * 16000)]).words
    )
    ass = workdir / "export.ass"
    cues = build_cues(words, 0.0, end - start, cue_options("shorts"))
    ass.write_text(to_ass(cues, "shorts", output_size("9:16")))
    meta = probe(long_video)
    assert meta.width and meta.height
    config = load_pipeline_config().export
    began = time.perf_counter()
    render_clip(
        long_video,
        workdir / "export.mp4",
        RenderSpec(
            start, end, "9:16", ass_path=ass, preset=config.preset, x264_params=config.x264_params
        ),
        src_size=(meta.width, meta.height),
    )
    return time.perf_counter() - began


#: (name, short side or None for the source crop's, x264 preset and params, face tracking).
_DEFAULT_X264 = ("ultrafast", "cabac=1:deblock=0,0")
EXPORT_VARIANTS: tuple[tuple[str, int | None, tuple[str, str], bool], ...] = (
    ("crop size, veryfast (before presets)", None, ("veryfast", ""), True),
    ("720x1280 veryfast (old config)", 720, ("veryfast", ""), True),
    ("1080x1920 veryfast", 1080, ("veryfast", ""), True),
    ("1080x1920 superfast", 1080, ("superfast", ""), True),
    ("1080x1920 ultrafast+cabac+deblock (new)", 1080, _DEFAULT_X264, True),
    ("1080x1920 new x264, motion only", 1080, _DEFAULT_X264, False),
)


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its finished children (ffmpeg) so far:
    unlike wall time, hardly changed by other work on a busy machine."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def export_bench(video: Path, workdir: Path, reps: int) -> None:
    """A 45 s 9:16 clip of a face video with short-form captions, rendered at the size exports
    had before the presets (the crop's own size: 302x540 from this 960x540 source, never scaled
    up), at the old 720x1280 config, and at the 1080x1920 preset with two x264 presets, with face
    tracking (layout `auto`: planned, captions placed clear of the face, rendered) and once
    with the motion-only crop; the order rotates each repetition so all see the same load."""
    from clipforge.media import decode_audio, probe
    from models.asr import AsrModel
    from models.caption import build_cues
    from models.caption_formats import cue_options, to_ass
    from pipelines.render.clip import RenderSpec, crop_size, output_size, plan_clip, render_clip

    start, end = 5.0, 50.0
    meta = probe(video)
    assert meta.width and meta.height and meta.duration_s >= end, "the source is too short"
    size = (meta.width, meta.height)
    words = AsrModel().transcribe(decode_audio(video)[int(start * 16000) : int(end * 16000)]).words
    cues = build_cues(words, 0.0, end - start, cue_options("shorts"))
    crop_side = min(crop_size(*size, "9:16"))
    times: dict[str, list[float]] = {name: [] for name, *_ in EXPORT_VARIANTS}
    cpu: dict[str, list[float]] = {name: [] for name, *_ in EXPORT_VARIANTS}
    planning: list[float] = []
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f} source={video.name} clip=45 s 9:16")
    for rep in range(reps):
        shift = rep % len(EXPORT_VARIANTS)
        for name, side, (preset, params), face in EXPORT_VARIANTS[shift:] + EXPORT_VARIANTS[:shift]:
            spec = RenderSpec(
                start,
                end,
                "9:16",
                short_side=side or crop_side,
                ass_path=workdir / "export.ass",
                preset=preset,
                x264_params=params,
                face_tracking=face,
            )
            began, cpu_began = time.perf_counter(), _cpu_s()
            plan = plan_clip(video, spec, src_size=size, words=words) if face else None
            if face:
                planning.append(time.perf_counter() - began)
            avoid = plan.face_spans if plan else ()
            out = output_size("9:16", spec.short_side)
            spec.ass_path.write_text(to_ass(cues, "shorts", out, avoid=avoid))  # type: ignore[union-attr]
            render_clip(video, workdir / "e.mp4", spec, src_size=size, words=words, plan=plan)
            times[name].append(time.perf_counter() - began)
            cpu[name].append(_cpu_s() - cpu_began)
            print(
                f"rep {rep + 1}: {name:36} {out[0]}x{out[1]} {times[name][-1]:5.1f} s "
                f"({cpu[name][-1]:5.1f} CPU s), load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    print(f"{'export 45 s 9:16 (median of ' + str(reps) + ')':40} {'wall s':>8} {'CPU s':>8}")
    for name, *_ in EXPORT_VARIANTS:
        wall, used = statistics.median(times[name]), statistics.median(cpu[name])
        print(f"{name:40} {wall:8.1f} {used:8.1f}")
    print(
        f"of which reframe analysis {statistics.median(planning):.1f} s; "
        f"load average now {os.getloadavg()[0]:.2f}"
    )


def long_run(video: Path) -> None:
    """The worker alone on one 2-hour source: throughput and peak resident memory."""
    from clipforge.media import probe

    minutes = probe(video).duration_s / 60
    print(
        f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f} video={video.name} ({minutes:.0f} min)"
    )
    with tempfile.TemporaryDirectory() as tmp, PeakRss() as rss:
        ours, loads = through_worker([video], Path(tmp), auto_export=False, rss=rss)
    mb = 1024 * 1024
    print(f"clipforge worker: {ours:.0f} s wall, {minutes / (ours / 60):.2f} video min / wall min")
    print(f"peak RSS: driver {rss.driver / mb:.0f} MB, driver + actors {rss.total / mb:.0f} MB")
    for name, peak in sorted(rss.actors.items()):
        print(f"  {name:14} {peak / mb:8.0f} MB")
    print(f"models loaded: {loads}; load average now {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--video",
        default="speech_short",
        choices=["speech_short", "speech_long", "long-2h", "long-2h-2p"],
    )
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="repeat and report the median")
    parser.add_argument(
        "--no-warm", dest="warm", action="store_false", help="skip the warm-worker run"
    )
    parser.add_argument(
        "--export-bench",
        action="store_true",
        help="only the export of a 45 s clip of a face video, with and without face tracking",
    )
    parser.add_argument("--reps", type=int, default=3, help="--export-bench repetitions")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION__KEY=YAML",
        help="override the worker's pipeline config, e.g. transcribe__asr_actors=1 (repeatable)",
    )
    args = parser.parse_args()
    overrides = {k: yaml.safe_load(v) for k, _, v in (o.partition("=") for o in args.set)}
    if args.export_bench:
        with tempfile.TemporaryDirectory() as tmp:
            export_bench(_media("face_pan_long"), Path(tmp), args.reps)
        return
    video = _media(args.video)
    if args.video.startswith("long-2h"):
        long_run(video)
        return
    from clipforge.media import probe

    minutes = probe(video).duration_s * args.count / 60
    print(
        f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f} videos={args.count}x{args.video} "
        f"({minutes:.1f} min of video)"
    )
    videos = [video] * args.count
    rows: list[tuple[float, float, float, float]] = []
    cpu_rows: list[tuple[float, float, float, float]] = []
    startup: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for _ in range(args.rounds):  # each round: the four runs back to back, same load
            cpus = (TreeCpu(), TreeCpu(), TreeCpu(), TreeCpu())
            with cpus[0]:
                seq = sequential(videos, work)
            with cpus[1]:
                loop = same_output_loop(videos, work)
            startup.clear()
            cold, loads = through_worker(
                videos, work, startup=startup, overrides=overrides, cpu=cpus[2]
            )
            warm = (
                through_worker(videos, work, warm=True, overrides=overrides, cpu=cpus[3])[0]
                if args.warm
                else float("nan")
            )
            rows.append((seq, loop, cold, warm))
            cpu_rows.append((cpus[0].seconds, cpus[1].seconds, cpus[2].seconds, cpus[3].seconds))
            print(
                f"round: sequential script {seq:.1f} s, same-output loop {loop:.1f} s, "
                f"worker {cold:.1f} s (warm {warm:.1f} s), load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        export = export_seconds(_media("speech_long"), work)
    seq, loop, cold, warm = (statistics.median(col) for col in zip(*rows, strict=True))
    used = [statistics.median(col) for col in zip(*cpu_rows, strict=True)]
    cores = os.cpu_count() or 1
    # CPU s / cores is the least wall time the work could take here with every core busy.
    print(f"{'':34} {'wall s':>8} {'video min / wall min':>21} {'CPU s':>7} {'CPU s / cores':>14}")
    for (name, wall), cpu_s in zip(
        (
            ("sequential script", seq),
            ("same-output loop", loop),
            ("clipforge worker (cold start)", cold),
            ("clipforge worker (warm, running)", warm),
        ),
        used,
        strict=True,
    ):
        print(
            f"{name:34} {wall:8.1f} {minutes / (wall / 60):21.2f} {cpu_s:7.1f} {cpu_s / cores:14.1f}"
        )
    print(
        f"worker / sequential script: {seq / cold:.2f}x cold, {seq / warm:.2f}x warm; "
        f"worker / same-output loop: {loop / cold:.2f}x cold, {loop / warm:.2f}x warm "
        f"(medians of {args.rounds} round(s); models loaded per worker: {loads})"
    )
    print("cold start-up breakdown (last round):", *startup, sep="\n")
    print(f"load average after the run: {os.getloadavg()[0]:.2f}")
    print(f"export one 45 s 9:16 captioned clip (1080x1920): {export:.1f} s (target < 8 s)")


if __name__ == "__main__":
    main()
