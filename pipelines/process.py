"""`clipforge process`: one video through the whole pipeline on the embedded default.

No configuration needed: a local Ray, the embedded Postgres (`pgserver`) when DATABASE_URL is
unset, the local-folder storage, no Redis. It is the same queue and the same stage pipelines as
the worker; the video simply enters through the database and comes out as files in `--out`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from clipforge.db.embedded import resolve_database_url
from clipforge.db.migrate import migrate
from clipforge.db.pool import Pool, create_pool
from clipforge.db.repo.clips import list_all_clips
from clipforge.db.repo.transcripts import get_transcript
from clipforge.db.repo.videos import create_video, get_video
from clipforge.errors import MediaError, ValidationFailed
from clipforge.fetch import check_url, parse_networks
from clipforge.queue import enqueue
from clipforge.settings import Settings
from clipforge.storage import create_store
from pipelines.config import AspectRatio, PipelineConfig, load_pipeline_config
from pipelines.report import render_report
from pipelines.worker import PipelineWorker


@dataclass(frozen=True, slots=True)
class ProcessOptions:
    """Options of one `process` run.

    Attributes:
        aspect_ratio: of the rendered clips.
        caption_style: ASS style burned into them.
        top_k: at most this many clips.
        config_path: pipeline config (default configs/pipeline.yaml).
    """

    aspect_ratio: AspectRatio = "9:16"
    caption_style: str = "karaoke"
    top_k: int = 3
    config_path: Path | None = None


def _ensure_local_ray() -> None:
    import ray

    if not ray.is_initialized():
        ray.init(
            address=os.environ.get("RAY_ADDRESS"),
            include_dashboard=False,
            log_to_driver=False,
            num_cpus=None if os.environ.get("RAY_ADDRESS") else os.cpu_count(),
        )


def _source(source: str, settings: Settings) -> tuple[str, str]:
    if source.startswith(("http://", "https://")):
        check_url(source, allowed=parse_networks(settings.fetch_allow_cidrs))
        return "url", source
    path = Path(source).expanduser().resolve()
    if not path.is_file():
        raise ValidationFailed(f"{source} is not a file or an http(s) URL")
    return "file", str(path)


def _watch(pool: Pool, video_id: uuid.UUID, done: threading.Event, out: TextIO) -> None:
    last = ""
    while not done.wait(1.0):
        with pool.connection() as conn:
            video = get_video(conn, video_id=video_id)
        if video is not None and video.status != last:
            last = video.status
            print(f"[clipforge] {last}…", file=out, flush=True)


def process_video(
    source: str, out_dir: Path, settings: Settings, options: ProcessOptions | None = None
) -> dict[str, Any]:
    """Run the pipeline on `source` and write transcript, clips and report to `out_dir`."""
    opts = options or ProcessOptions()
    kind, location = _source(source, settings)
    config = _config(load_pipeline_config(opts.config_path), opts)
    url = resolve_database_url(settings)
    migrate(url)
    _ensure_local_ray()
    with create_pool(settings, url, application_name="clipforge-process", max_size=4) as pool:
        with pool.connection() as conn, conn.transaction():
            video = create_video(conn, owner_key_id=None, source_kind=kind, source_url=location)  # type: ignore[arg-type]
            enqueue(conn, kind="import", video_id=video.id, payload={"video_id": str(video.id)})
        done = threading.Event()
        threading.Thread(
            target=_watch, args=(pool, video.id, done, sys.stderr), daemon=True
        ).start()
        try:
            PipelineWorker(settings, config, pool, database_url=url).run(until_idle=True)
        finally:
            done.set()
        return _write_outputs(pool, settings, video.id, out_dir, source)


def _config(config: PipelineConfig, opts: ProcessOptions) -> PipelineConfig:
    auto = config.detect.auto_export.model_copy(
        update={
            "enabled": True,
            "top_n": opts.top_k,
            "aspect_ratio": opts.aspect_ratio,
            "caption_style": opts.caption_style,
        }
    )
    detect = config.detect.model_copy(update={"top_k": opts.top_k, "auto_export": auto})
    worker = config.worker.model_copy(update={"idle_poll_s": 0.2})
    return config.model_copy(update={"detect": detect, "worker": worker})


def _write_outputs(
    pool: Pool, settings: Settings, video_id: uuid.UUID, out_dir: Path, source: str
) -> dict[str, Any]:
    with pool.connection() as conn:
        video = get_video(conn, video_id=video_id)
        transcript = get_transcript(conn, video_id=video_id)
        clips = list_all_clips(conn, video_id=video_id)
        exports = {
            r["clip_id"]: r
            for r in conn.execute(
                "SELECT e.* FROM exports e JOIN clips c ON c.id = e.clip_id WHERE c.video_id = %s",
                (video_id,),
            ).fetchall()
        }
    if video is None or video.status != "ready" or transcript is None:
        reason = video.error if video is not None else "the video row disappeared"
        raise MediaError(f"processing failed: {reason}")
    store = create_store(settings)
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    clip_docs = []
    for clip in clips:
        export = exports.get(clip.id)
        files: dict[str, str] = {}
        if export is not None and export["status"] == "ready":
            base = export["object_key"].removesuffix(".mp4")
            for ext, key in (
                ("mp4", export["object_key"]),
                ("thumbnail", export["thumbnail_key"]),
                ("srt", base + ".srt"),
                ("vtt", base + ".vtt"),
                ("ass", base + ".ass"),
            ):
                suffix = "jpg" if ext == "thumbnail" else ext
                rel = f"clips/{clip.rank:02d}.{suffix}"
                store.download_file(key, out_dir / rel)
                files[ext] = rel
        clip_docs.append(
            {
                "rank": clip.rank,
                "start": clip.start_s,
                "end": clip.end_s,
                "score": clip.score,
                "sub_scores": clip.sub_scores,
                "reason": clip.reason,
                "title": clip.title,
                "hook": clip.hook,
                "model": clip.model_name,
                "model_version": clip.model_version,
                "export_status": export["status"] if export else None,
                "files": files,
            }
        )
    doc = transcript.to_dict()
    (out_dir / "transcript.json").write_text(json.dumps(doc, indent=2))
    (out_dir / "clips.json").write_text(json.dumps(clip_docs, indent=2))
    timeline = video.metadata.get("highlight_timeline", [])
    (out_dir / "report.html").write_text(
        render_report(source=source, transcript=doc, clips=clip_docs, timeline=timeline)
    )
    return {"video_id": str(video_id), "clips": clip_docs, "out_dir": str(out_dir)}
