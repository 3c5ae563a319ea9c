"""`clipforge process`: one video through the whole pipeline on the embedded default.

No configuration needed: a local Ray, the embedded Postgres (`pgserver`) when DATABASE_URL is
unset, the local-folder storage, no Redis. It is the same queue and the same stage pipelines as
the worker; the video simply enters through the database and comes out as files in `--out`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from clipforge.db.embedded import resolve_database_url
from clipforge.db.migrate import migrate
from clipforge.db.pool import Pool, create_pool
from clipforge.db.repo.api_keys import authenticate
from clipforge.db.repo.clips import list_all_clips
from clipforge.db.repo.exports import list_exports_for_video
from clipforge.db.repo.transcripts import get_transcript
from clipforge.db.repo.video_jobs import video_has_unfinished_jobs
from clipforge.db.repo.videos import create_video, delete_video, get_video
from clipforge.errors import MediaError, ValidationFailed
from clipforge.local_ray import init_ray, shutdown_ray
from clipforge.queue import QueuePolicy, enqueue
from clipforge.settings import Settings
from clipforge.storage import create_store
from clipforge.storage.keys import upload_key, video_prefix
from clipforge.studio import running_studio
from clipforge.types import AspectRatio, CaptionStyle, Layout
from pipelines.config import PipelineConfig, load_pipeline_config
from pipelines.engine.worker import PipelineWorker
from pipelines.local.preflight import CheckedSource, check_options, check_out_dir, check_source
from pipelines.local.progress import RunProgress
from pipelines.local.run_outputs import clip_doc, write_run_outputs


@dataclass(frozen=True, slots=True)
class ProcessOptions:
    """Options of one `process` run.

    Attributes:
        aspect_ratio: of the rendered clips.
        caption_style: ASS style burned into them.
        top_k: at most this many clips.
        layout: who the crop follows: auto, speaker, split or center (clipforge.types.Layout).
        config_path: pipeline config (default configs/pipeline.yaml).
        keep: keep the video's rows and media in the data folder after the run (by default a
            one-off run leaves only its output folder behind).
        overwrite: replace another run's outputs in the output folder (refused otherwise).
        studio_url: an API server (`clipforge api`) on the same database and storage: the
            video is kept, owned by `studio_key`, and the report links to its studio page when
            that server answers.
        studio_key: the raw API key that owns the kept video (the studio page asks for it).
    """

    aspect_ratio: AspectRatio = "9:16"
    caption_style: CaptionStyle = "auto"
    top_k: int = 3
    config_path: Path | None = None
    keep: bool = False
    layout: Layout = "auto"
    overwrite: bool = False
    studio_url: str | None = None
    studio_key: str | None = None


# Signals blocked in this process while ray.init starts Ray's own processes; a child forked in
# that time unblocks them (below), or it would inherit the blocked mask: Ray's GCS, raylet and
# the rest then ignored the SIGTERM of ray.shutdown, which waits 1 s for each of five before it
# kills them (5 of a short video's 18 s run were "shut down").
_UNBLOCK_IN_CHILD: set[signal.Signals] = set()


def _unblock_in_child() -> None:
    if _UNBLOCK_IN_CHILD:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _UNBLOCK_IN_CHILD)


# Runs in children forked with a preexec_fn (Ray starts its processes so); nothing otherwise.
os.register_at_fork(after_in_child=_unblock_in_child)


@contextlib.contextmanager
def local_ray() -> Iterator[None]:
    """Connect to RAY_ADDRESS or start a private local Ray; shut down what this call started."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = os.environ.get("RAY_ADDRESS") or None
    handlers = _python_signal_handlers()
    # ray.init installs its own SIGTERM handler (abort at once); the caller's unwinds cleanly, so
    # it is put back, and a signal that arrives during start-up waits (blocked) until it is.
    signal.pthread_sigmask(signal.SIG_BLOCK, handlers)
    _UNBLOCK_IN_CHILD.update(handlers)
    try:
        init_ray(
            address,
            include_dashboard=False,
            log_to_driver=False,
            num_cpus=None if address else os.cpu_count(),
        )
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    finally:
        _UNBLOCK_IN_CHILD.clear()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, handlers)
    try:
        yield
    finally:
        shutdown_ray(started_here=address is None)


def _python_signal_handlers() -> dict[signal.Signals, Any]:
    """The caller's Python-level SIGTERM/SIGHUP handlers (only the main thread may set them)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    found = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    return {s: h for s, h in found.items() if callable(h)}


def run_one_video(
    source: str,
    out_dir: Path,
    settings: Settings,
    options: ProcessOptions | None = None,
    *,
    progress: TextIO | RunProgress | None = None,
) -> dict[str, Any]:
    """Run the pipeline on `source` and write transcript, clips and report to `out_dir`.

    Bad options or input raise `ClipForgeError` before anything starts. With `progress` (a
    terminal stream, or the caller's open `RunProgress`), start-up, the stages, the outputs and
    the shutdown are shown as they run.
    """
    opts = options or ProcessOptions()
    check_options(
        aspect_ratio=opts.aspect_ratio,
        caption_style=opts.caption_style,
        top_k=opts.top_k,
        layout=opts.layout,
    )
    checked = check_source(source, settings)
    local = Path(checked.location) if checked.kind == "file" else None
    out = check_out_dir(out_dir, overwrite=opts.overwrite, source=local)
    config = _config(load_pipeline_config(opts.config_path), opts)
    with _display(progress) as display:
        return _run_pipeline(source, checked, out, settings, opts, config, display)


@contextlib.contextmanager
def _display(progress: TextIO | RunProgress | None) -> Iterator[RunProgress | None]:
    """The caller's display, or one on the stream given (closed at the end), or none."""
    if progress is None or isinstance(progress, RunProgress):
        yield progress
        return
    with RunProgress(progress) as display:
        yield display


def _step(display: RunProgress | None, label: str, note: str) -> Any:
    return display.step(label, note) if display else contextlib.nullcontext(lambda _: None)


def _run_pipeline(
    source: str,
    checked: CheckedSource,
    out: Path,
    settings: Settings,
    opts: ProcessOptions,
    config: PipelineConfig,
    display: RunProgress | None,
) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        with _step(display, "start-up", "starting Postgres") as say:
            url = resolve_database_url(settings)
            migrate(url)
            say("starting Ray")
            stack.enter_context(local_ray())
            pool = stack.enter_context(
                create_pool(settings, url, application_name="clipforge-process", max_size=4)
            )
            staged = _on_cluster(settings, checked)
            owner = _studio_owner(pool, opts)
            video_id = _enqueue(pool, settings, checked, stage_file=staged, owner=owner)
            say("starting the stage actors")
            worker = PipelineWorker(settings, config, pool, database_url=url)
            worker.start()  # each stage's actors start (and load models) as work reaches it
        shown = display.stages(pool, video_id) if display else contextlib.nullcontext()
        # Closing the worker releases its stage actors before outputs are copied.
        with shown, worker:
            _run_until_finished(worker, pool, video_id)
        with _step(display, "write outputs", "clips, transcript, report"):
            studio = running_studio(opts.studio_url, video_id) if opts.studio_url else None
            result = _write_outputs(pool, settings, video_id, out, source, studio)
            if not opts.keep and not opts.studio_url:  # the studio edits the kept rows
                _forget(pool, settings, video_id)
        with _step(display, "shut down", "stopping Ray"):
            stack.close()
        return result


def _on_cluster(settings: Settings, checked: CheckedSource) -> bool:
    """Whether a local input file must be staged into object storage first (with RAY_ADDRESS).

    Stage actors may run on other nodes, where neither the input path nor a local-folder store
    exists; so on a cluster the file goes through storage, and local storage needs one node.
    """
    if not os.environ.get("RAY_ADDRESS"):
        return False
    import ray

    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    alive = len([n for n in nodes if n.get("Alive")])
    check_cluster_storage(nodes=alive, backend=settings.storage_backend)
    return checked.kind == "file"


def check_cluster_storage(*, nodes: int, backend: str) -> None:
    """Refuse local-folder storage on a cluster of several nodes: outputs would be split."""
    if nodes > 1 and backend == "local":
        raise ValidationFailed(
            f"the Ray cluster at RAY_ADDRESS has {nodes} nodes, but media storage is a local "
            "folder that only this node sees; set S3_BUCKET (and S3_ENDPOINT_URL) or run "
            "without RAY_ADDRESS"
        )


def _studio_owner(pool: Pool, opts: ProcessOptions) -> uuid.UUID | None:
    """The key that will own the video, for the studio to open it; None without a studio."""
    if not opts.studio_url:
        return None
    with pool.connection() as conn:
        key = authenticate(conn, raw_key=opts.studio_key or "")
    if key is None:
        raise ValidationFailed(
            "--studio needs CLIPFORGE_API_KEY set to an active key of this database "
            "(clipforge keys create)"
        )
    return key.id


def _enqueue(
    pool: Pool,
    settings: Settings,
    checked: CheckedSource,
    *,
    stage_file: bool,
    owner: uuid.UUID | None = None,
) -> uuid.UUID:
    video_id = uuid.uuid4()
    if stage_file:  # the import stage reads an upload from storage, on whichever node it runs
        create_store(settings).put_file(upload_key(video_id), Path(checked.location))
    with pool.connection() as conn, conn.transaction():
        create_video(
            conn,
            owner_key_id=owner,
            source_kind="upload" if stage_file else checked.kind,
            source_url=None if stage_file else checked.location,
            video_id=video_id,
        )
        enqueue(
            conn,
            QueuePolicy.from_settings(settings),
            kind="import",
            video_id=video_id,
            payload={"video_id": str(video_id)},
        )
    return video_id


def _run_until_finished(worker: PipelineWorker, pool: Pool, video_id: uuid.UUID) -> None:
    """Run the worker until every job of the video has finished.

    `run(until_idle=True)` returns when nothing is runnable *now*; a job waiting out its retry
    backoff is not finished, so the loop waits for it instead of reporting early.
    """
    while True:
        worker.run(until_idle=True)
        with pool.connection() as conn:
            if not video_has_unfinished_jobs(conn, video_id=video_id):
                return
        time.sleep(0.5)


def _forget(pool: Pool, settings: Settings, video_id: uuid.UUID) -> None:
    """Drop the run's copy of the input and renders: the output folder holds what matters."""
    store = create_store(settings)
    store.delete_prefix(video_prefix(video_id))
    store.delete(upload_key(video_id))  # a staged input (on a cluster), if any
    with pool.connection() as conn, conn.transaction():
        delete_video(conn, video_id=video_id)


def _config(config: PipelineConfig, opts: ProcessOptions) -> PipelineConfig:
    auto = config.detect.auto_export.model_copy(
        update={
            "enabled": True,
            "top_n": opts.top_k,
            "aspect_ratio": opts.aspect_ratio,
            "caption_style": opts.caption_style,
            "layout": opts.layout,
        }
    )
    detect = config.detect.model_copy(update={"top_k": opts.top_k, "auto_export": auto})
    worker = config.worker.model_copy(update={"idle_poll_s": 0.2})
    return config.model_copy(update={"detect": detect, "worker": worker})


def _write_outputs(
    pool: Pool,
    settings: Settings,
    video_id: uuid.UUID,
    out_dir: Path,
    source: str,
    studio_url: str | None = None,
) -> dict[str, Any]:
    with pool.connection() as conn:
        video = get_video(conn, video_id=video_id)
        transcript = get_transcript(conn, video_id=video_id)
        clips = list_all_clips(conn, video_id=video_id)
        exports = {e.clip_id: e for e in list_exports_for_video(conn, video_id=video_id)}
    if video is None or video.status != "ready" or transcript is None:
        reason = video.error if video is not None else "the video row disappeared"
        raise MediaError(f"processing failed: {reason}")
    store = create_store(settings)
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    clip_docs = []
    for clip in clips:
        export = exports.get(clip.id)
        files: dict[str, str] = {}
        if export is not None and export.status == "ready" and export.object_key:
            base = export.object_key.removesuffix(".mp4")
            for ext, key in (
                ("mp4", export.object_key),
                ("thumbnail", export.thumbnail_key or base + ".jpg"),
                ("srt", base + ".srt"),
                ("vtt", base + ".vtt"),
                ("ass", base + ".ass"),
            ):
                suffix = "jpg" if ext == "thumbnail" else ext
                rel = f"clips/{clip.rank:02d}.{suffix}"
                store.download_file(key, out_dir / rel)
                files[ext] = rel
        clip_docs.append(
            clip_doc(
                rank=clip.rank,
                start=clip.start_s,
                end=clip.end_s,
                score=clip.score,
                sub_scores=clip.sub_scores,
                reason=clip.reason,
                title=clip.title,
                hook=clip.hook,
                model=clip.model_name,
                model_version=clip.model_version,
                export_status=export.status if export else None,
                export_error=export.error if export else None,
                layout=export.layout if export else None,
                files=files,
            )
        )
    write_run_outputs(
        out_dir,
        source=source,
        transcript=transcript.to_dict(),
        clips=clip_docs,
        timeline=video.metadata.get("highlight_timeline", []),
        store=store,
        original_key=video.original_key,
        studio_url=studio_url,
    )
    return {"video_id": str(video_id), "clips": clip_docs, "out_dir": str(out_dir)}
