"""Import stage: fetch (SSRF-safe) or locate the source, validate and probe it, store the original
and its 16 kHz mono audio track (so no later stage decodes the source's audio again)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clipforge.db.pool import Conn
from clipforge.db.repo.videos import get_videos, update_video
from clipforge.errors import MediaError, NotFound
from clipforge.fetch import download, parse_networks
from clipforge.media import probe, require_clip_source
from clipforge.media.track import extract_track
from clipforge.queue import Job, JobResult
from clipforge.settings import Settings
from clipforge.storage import ObjectStore, create_store
from clipforge.storage.keys import audio_key, original_key, upload_key
from pipelines.config import ImportConfig, PipelineConfig
from pipelines.stages.actors import Report, StageActor
from pipelines.stages.base import ActorSpec, BaseStage
from pipelines.stages.lifecycle import video_of
from pipelines.stages.values import StageError, job_value

_EXT_BY_FORMAT = {
    "mov,mp4,m4a,3gp,3g2,mj2": "mp4",
    "matroska,webm": "mkv",
    "mp3": "mp3",
    "wav": "wav",
}


@dataclass(frozen=True, slots=True)
class ImportInput:
    """Where a video's source is: a URL, the upload object, or a file on this machine."""

    job_id: int
    video_id: uuid.UUID
    source_kind: str
    source_url: str
    # Set when the video was imported before (a backfill re-import).
    original_key: str


@dataclass(frozen=True, slots=True)
class ImportOutput:
    """The stored original and its media facts."""

    job_id: int
    original_key: str
    size_bytes: int
    duration_s: float
    width: int | None
    height: int | None
    fps: float | None
    has_audio: bool
    # Read from the upload object (the driver removes it once the import committed).
    from_upload: bool


class ImportActor(StageActor):
    """Brings sources into storage; keeps what it stored in the node cache for later stages."""

    def __init__(self, settings: Settings, config: ImportConfig) -> None:
        super().__init__(settings)
        self.config = config

    def run(self, item: ImportInput) -> tuple[ImportOutput | StageError, Report]:
        """Import one video; its job's error if the source is bad or unreachable."""
        return job_value(item.job_id, lambda: self._import(item)), self.report()

    def _fetch_source(self, item: ImportInput, local: Path) -> bool:
        """Bring the source to `local`; True if it was read from the upload object (which the
        driver removes once the import committed)."""
        video_id = item.video_id
        kind = item.source_kind
        if kind == "url":
            download(
                item.source_url,
                local,
                max_bytes=self.settings.max_source_bytes,
                timeout_s=self.settings.fetch_timeout_s,
                allowed=parse_networks(self.settings.fetch_allow_cidrs),
            )
        elif kind == "upload":
            try:
                self.store.download_file(upload_key(video_id), local)
                return True
            except NotFound:
                if not item.original_key:
                    raise MediaError(
                        "no uploaded file: PUT the video to the upload URL first"
                    ) from None
            # Imported before (a backfill re-import): the upload was removed then; the
            # original stored by that import is the same bytes.
            self.store.download_file(item.original_key, local)
        else:  # "file": a path on this machine (the embedded CLI)
            source = Path(item.source_url)
            if not source.is_file():
                raise MediaError(f"{source} does not exist or is not a file")
            shutil.copyfile(source, local)
        return False

    def _import(self, item: ImportInput) -> ImportOutput:
        video_id = item.video_id
        limits = self.config
        max_bytes = self.settings.max_source_bytes  # the API's upload limit too
        with tempfile.TemporaryDirectory(prefix="cf-import-") as tmp:
            local = Path(tmp) / "source"  # named in user-facing errors
            from_upload = self._fetch_source(item, local)
            size = local.stat().st_size
            if size > max_bytes:
                raise MediaError(f"source is {size} bytes; the limit is {max_bytes}")
            info = probe(local)  # typed MediaError for empty, corrupt, non-media input
            require_clip_source(info, local)
            if info.duration_s > limits.max_duration_s:
                raise MediaError(
                    f"source is {info.duration_s:.0f} s long; the limit is {limits.max_duration_s:.0f} s"
                )
            audio = extract_track(local, Path(tmp) / "audio.flac")
            key = original_key(video_id, _EXT_BY_FORMAT.get(info.format_name, "bin"))
            # Audio first: a video row never points at an original without its track.
            for object_key, path in ((audio_key(video_id), audio), (key, local)):
                stored = self.store.put_file(object_key, path)
                self.cache.put(object_key, stored.etag, path)  # the next stages read it here
        return ImportOutput(
            job_id=item.job_id,
            original_key=key,
            size_bytes=size,
            duration_s=info.duration_s,
            width=info.width,
            height=info.height,
            fps=info.fps,
            has_audio=info.has_audio,
            from_upload=from_upload,
        )


class ImportStage(BaseStage[ImportInput, ImportOutput]):
    """Driver side of the import stage."""

    name = "import"
    missing = "video row not found"
    _store: ObjectStore | None = None  # the driver's, made on first use

    def actor_spec(self, settings: Settings, config: PipelineConfig) -> ActorSpec:
        """Import actors: fetch, probe, extract the audio track, store."""
        own: ImportConfig = config.import_
        return ActorSpec(
            ImportActor, (settings, own), own.actors, own.num_cpus, own.claim_batch_size
        )

    def load(self, conn: Conn, jobs: Sequence[Job]) -> dict[int, ImportInput]:
        """Each job's source (one query)."""
        videos = get_videos(conn, video_ids=[j.video_id for j in jobs if j.video_id])
        return {
            j.id: ImportInput(
                job_id=j.id,
                video_id=v.id,
                source_kind=v.source_kind,
                source_url=v.source_url or "",
                original_key=v.original_key or "",
            )
            for j in jobs
            if (v := videos.get(video_of(j))) is not None
        }

    def commit(self, job: Job, output: ImportOutput) -> JobResult:
        """Record the media facts and move the video on to transcription."""

        def write(conn: Conn) -> None:
            update_video(
                conn,
                video_id=video_of(job),
                error=None,
                original_key=output.original_key,
                size_bytes=output.size_bytes,
                duration_s=output.duration_s,
                width=output.width,
                height=output.height,
                fps=output.fps,
                has_audio=output.has_audio,
            )
            self.lifecycle.advance(conn, job, "transcribe", status="transcribing")

        follow_up = self.lifecycle.after(job, ("video",), seconds=output.duration_s)

        def after_commit() -> None:
            follow_up()
            if output.from_upload:
                # Imported: the original holds the same bytes, so the upload is not kept as a
                # second copy. Left behind by a crash here, the upload sweep removes it.
                if self._store is None:
                    self._store = create_store(self.settings)
                self._store.delete(upload_key(video_of(job)))

        return JobResult(on_commit=write, after_commit=after_commit)
