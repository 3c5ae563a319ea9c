"""Export stage: render one clip (cut, reframe, captions, loudness), upload it and its sidecars.

Export actors read the original through the node-local object cache (detect usually left it
there). The driver reads the batch's exports, clips, videos and transcripts in one query per
table.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clipforge.clip_edits import clip_words
from clipforge.db.pool import Conn
from clipforge.db.repo.clip_words import get_word_edits
from clipforge.db.repo.clips import get_clips
from clipforge.db.repo.exports import get_exports, set_exports_status, update_export
from clipforge.db.repo.transcripts import get_transcripts
from clipforge.db.repo.videos import get_videos
from clipforge.errors import MediaError
from clipforge.queue import Job, JobResult
from clipforge.settings import Settings
from clipforge.storage.keys import EXPORT_CONTENT_TYPES, export_key
from clipforge.types import Word
from pipelines.config import ExportConfig, PipelineConfig
from pipelines.render.clip_files import render_clip_files
from pipelines.stages.actors import Report, StageActor
from pipelines.stages.base import ActorSpec, BaseStage
from pipelines.stages.values import StageError, job_value


@dataclass(frozen=True, slots=True)
class ExportInput:
    """One export of a clip: its span of the stored original, its words and how it looks."""

    job_id: int
    export_id: uuid.UUID
    video_id: uuid.UUID
    original_key: str | None
    start_s: float
    end_s: float
    aspect_ratio: str
    caption_style: str
    layout: str
    # The clip's words, caption corrections applied.
    words: list[Word]


@dataclass(frozen=True, slots=True)
class ExportOutput:
    """The stored clip, its thumbnail (sidecars next to it) and its duration."""

    job_id: int
    export_id: uuid.UUID
    object_key: str
    thumbnail_key: str
    duration_s: float


class ExportActor(StageActor):
    """Renders exports; one storage client and cache for every clip it renders."""

    def __init__(self, settings: Settings, config: ExportConfig) -> None:
        super().__init__(settings)
        self.config = config

    def run(self, item: ExportInput) -> tuple[ExportOutput | StageError, Report]:
        """Render one export; its job's error if that fails."""
        return job_value(item.job_id, lambda: self._render(item)), self.report()

    def _render(self, item: ExportInput) -> ExportOutput:
        video_id, export_id = item.video_id, item.export_id
        if item.original_key is None:  # a clip comes after import stored the original
            raise MediaError("the video has no stored original")
        with tempfile.TemporaryDirectory(prefix="cf-export-") as tmp:
            folder = Path(tmp)
            files = render_clip_files(
                self.fetch(item.original_key, folder),
                folder,
                start_s=item.start_s,
                end_s=item.end_s,
                words=item.words,
                aspect_ratio=item.aspect_ratio,
                caption_style=item.caption_style,
                layout=item.layout,
                config=self.config,
            )
            paths = {"mp4": files.mp4, "jpg": files.jpg, "srt": files.srt, "vtt": files.vtt}
            paths["ass"] = files.ass
            keys = {ext: export_key(video_id, export_id, ext) for ext in paths}
            for ext, path in paths.items():
                self.store.put_file(keys[ext], path, content_type=EXPORT_CONTENT_TYPES[ext])
        return ExportOutput(
            job_id=item.job_id,
            export_id=export_id,
            object_key=keys["mp4"],
            thumbnail_key=keys["jpg"],
            duration_s=files.duration_s,
        )


class ExportStage(BaseStage[ExportInput, ExportOutput]):
    """Driver side of the export stage."""

    name = "export"
    missing = "export, clip or video not found"

    def actor_spec(self, settings: Settings, config: PipelineConfig) -> ActorSpec:
        """Export actors: cut, reframe, caption, store."""
        own: ExportConfig = config.export
        return ActorSpec(
            ExportActor, (settings, own), own.actors, own.num_cpus, own.claim_batch_size
        )

    def load(self, conn: Conn, jobs: Sequence[Job]) -> dict[int, ExportInput]:
        """Exports, clips, videos and transcripts of the batch (one query per table), and mark
        the exports that can run `rendering`."""
        wanted = {j.id: uuid.UUID(j.payload["export_id"]) for j in jobs if "export_id" in j.payload}
        exports = get_exports(conn, export_ids=list(wanted.values()))
        clips = get_clips(conn, clip_ids=[e.clip_id for e in exports.values()])
        video_ids = list({c.video_id for c in clips.values()})
        videos = get_videos(conn, video_ids=video_ids)
        transcripts = get_transcripts(conn, video_ids=video_ids)
        edits = get_word_edits(conn, clip_ids=list(clips))  # caption corrections
        rows: dict[int, ExportInput] = {}
        for job_id, export_id in wanted.items():
            export = exports.get(export_id)
            clip = clips.get(export.clip_id) if export else None
            video = videos.get(clip.video_id) if clip else None
            transcript = transcripts.get(clip.video_id) if clip else None
            if export is None or clip is None or video is None or transcript is None:
                continue
            words = clip_words(transcript.words, clip.start_s, clip.end_s, edits.get(clip.id, {}))
            rows[job_id] = ExportInput(
                job_id=job_id,
                export_id=export.id,
                video_id=clip.video_id,
                original_key=video.original_key,
                start_s=float(clip.start_s),
                end_s=float(clip.end_s),
                aspect_ratio=str(export.aspect_ratio),
                caption_style=str(export.caption_style),
                layout=str(export.layout),
                words=words,
            )
        if rows:
            ids = [r.export_id for r in rows.values()]
            set_exports_status(conn, export_ids=ids, status="rendering")
        return rows

    def commit(self, job: Job, output: ExportOutput) -> JobResult:
        """Record the stored files on the export."""

        def write(conn: Conn) -> None:
            update_export(
                conn,
                export_id=output.export_id,
                status="ready",
                error=None,
                object_key=output.object_key,
                thumbnail_key=output.thumbnail_key,
                duration_s=output.duration_s,
            )

        return JobResult(on_commit=write, after_commit=self.lifecycle.after(job, ("clips",)))
