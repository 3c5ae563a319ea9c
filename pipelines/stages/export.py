"""Export stage: render one clip (cut, reframe, captions, loudness), upload it and its sidecars.

Export actors read the original through the node-local object cache (detect usually left it
there). The driver reads the batch's exports, clips, videos and transcripts in one query per
table.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from clipforge.clip_edits import clip_words
from clipforge.db.pool import Conn
from clipforge.db.repo.clip_words import get_word_edits
from clipforge.db.repo.clips import get_clips
from clipforge.db.repo.exports import get_exports, set_exports_status, update_export
from clipforge.db.repo.transcripts import get_transcripts
from clipforge.db.repo.videos import get_videos
from clipforge.queue import Job, JobResult
from clipforge.settings import Settings
from clipforge.storage.keys import EXPORT_CONTENT_TYPES, export_key
from pipelines.actors import ActorSet, Report, StageActor, Telemetry
from pipelines.clip_files import render_clip_files
from pipelines.config import ExportConfig
from pipelines.lifecycle import Lifecycle
from pipelines.rows import Row, error_row


class ExportActor(StageActor):
    """Renders exports; one storage client and cache for every clip it renders."""

    def __init__(self, settings: Settings, config: ExportConfig) -> None:
        super().__init__(settings)
        self.config = config

    def run(self, row: Row) -> tuple[Row, Report]:
        """Render one export; an error row for its job if that fails."""
        try:
            out = self._render(row)
        except Exception as exc:  # this job fails; the others go on
            out = error_row(int(row["job_id"]), exc)
        return out, self.report()

    def _render(self, row: Row) -> Row:
        video_id, export_id = uuid.UUID(row["video_id"]), uuid.UUID(row["export_id"])
        with tempfile.TemporaryDirectory(prefix="cf-export-") as tmp:
            folder = Path(tmp)
            files = render_clip_files(
                self.fetch(row["original_key"], folder),
                folder,
                start_s=float(row["start_s"]),
                end_s=float(row["end_s"]),
                words=row["words"],
                aspect_ratio=str(row["aspect_ratio"]),
                caption_style=str(row["caption_style"]),
                layout=str(row.get("layout", "auto")),
                config=self.config,
            )
            paths = {"mp4": files.mp4, "jpg": files.jpg, "srt": files.srt, "vtt": files.vtt}
            paths["ass"] = files.ass
            keys = {ext: export_key(video_id, export_id, ext) for ext in paths}
            for ext, path in paths.items():
                self.store.put_file(keys[ext], path, content_type=EXPORT_CONTENT_TYPES[ext])
        return {
            "job_id": row["job_id"],
            "export_id": str(export_id),
            "object_key": keys["mp4"],
            "thumbnail_key": keys["jpg"],
            "duration_s": files.duration_s,
            "error": "",
        }


class ExportStage:
    """Driver side of the export stage."""

    name = "export"
    missing = "export, clip or video not found"

    def __init__(
        self, settings: Settings, config: ExportConfig, lifecycle: Lifecycle, telemetry: Telemetry
    ) -> None:
        self.lifecycle = lifecycle
        self.claim_batch_size = config.claim_batch_size
        self.runners = config.actors
        self.actors = ActorSet(
            self.name,
            ExportActor,
            (settings, config),
            count=config.actors,
            num_cpus=config.num_cpus,
            telemetry=telemetry,
        )

    def load(self, conn: Conn, jobs: Sequence[Job]) -> dict[int, Row]:
        """Exports, clips, videos and transcripts of the batch (one query per table), and mark
        the exports that can run `rendering`."""
        wanted = {j.id: uuid.UUID(j.payload["export_id"]) for j in jobs if "export_id" in j.payload}
        exports = get_exports(conn, export_ids=list(wanted.values()))
        clips = get_clips(conn, clip_ids=[e.clip_id for e in exports.values()])
        video_ids = list({c.video_id for c in clips.values()})
        videos = get_videos(conn, video_ids=video_ids)
        transcripts = get_transcripts(conn, video_ids=video_ids)
        edits = get_word_edits(conn, clip_ids=list(clips))  # caption corrections
        rows: dict[int, Row] = {}
        for job_id, export_id in wanted.items():
            export = exports.get(export_id)
            clip = clips.get(export.clip_id) if export else None
            video = videos.get(clip.video_id) if clip else None
            transcript = transcripts.get(clip.video_id) if clip else None
            if export is None or clip is None or video is None or transcript is None:
                continue
            words = clip_words(transcript.words, clip.start_s, clip.end_s, edits.get(clip.id, {}))
            rows[job_id] = {
                "job_id": job_id,
                "export_id": str(export.id),
                "video_id": str(clip.video_id),
                "original_key": video.original_key,
                "start_s": clip.start_s,
                "end_s": clip.end_s,
                "aspect_ratio": export.aspect_ratio,
                "caption_style": export.caption_style,
                "layout": export.layout,
                "words": words,
            }
        if rows:
            ids = [uuid.UUID(r["export_id"]) for r in rows.values()]
            set_exports_status(conn, export_ids=ids, status="rendering")
        return rows

    def execute(self, inputs: Mapping[int, Row]) -> dict[int, Row | Exception]:
        """One actor call per export."""
        rows = list(inputs.values())
        answers = self.actors.map("run", rows)
        return {int(r["job_id"]): a for r, a in zip(rows, answers, strict=True)}

    def commit(self, job: Job, output: Row) -> JobResult:
        """Record the stored files on the export."""

        def write(conn: Conn) -> None:
            update_export(
                conn,
                export_id=uuid.UUID(output["export_id"]),
                status="ready",
                error=None,
                object_key=output["object_key"],
                thumbnail_key=output["thumbnail_key"],
                duration_s=output["duration_s"],
            )

        return JobResult(on_commit=write, after_commit=self.lifecycle.after(job, ("clips",)))
