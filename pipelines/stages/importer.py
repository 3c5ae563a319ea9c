"""Import stage: fetch (SSRF-safe) or locate the source, validate and probe it, store the original
and its 16 kHz mono audio track (so no later stage decodes the source's audio again)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
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
from pipelines.actors import ActorSet, Report, StageActor, Telemetry
from pipelines.config import ImportConfig
from pipelines.lifecycle import Lifecycle, video_of
from pipelines.rows import Row, error_row

_EXT_BY_FORMAT = {
    "mov,mp4,m4a,3gp,3g2,mj2": "mp4",
    "matroska,webm": "mkv",
    "mp3": "mp3",
    "wav": "wav",
}
_MEDIA_FACTS = ("original_key", "size_bytes", "duration_s", "width", "height", "fps", "has_audio")


class ImportActor(StageActor):
    """Brings sources into storage; keeps what it stored in the node cache for later stages."""

    def __init__(self, settings: Settings, config: ImportConfig) -> None:
        super().__init__(settings)
        self.config = config

    def run(self, row: Row) -> tuple[Row, Report]:
        """Import one video; an error row for its job if the source is bad or unreachable."""
        try:
            out = self._import(row)
        except Exception as exc:  # this job fails; the others go on
            out = error_row(int(row["job_id"]), exc)
        return out, self.report()

    def _fetch_source(self, row: Row, local: Path) -> bool:
        """Bring the source to `local`; True if it was read from the upload object (which the
        driver removes once the import committed)."""
        video_id = uuid.UUID(row["video_id"])
        kind = row["source_kind"]
        if kind == "url":
            download(
                row["source_url"],
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
                if not row.get("original_key"):
                    raise MediaError(
                        "no uploaded file: PUT the video to the upload URL first"
                    ) from None
            # Imported before (a backfill re-import): the upload was removed then; the
            # original stored by that import is the same bytes.
            self.store.download_file(row["original_key"], local)
        else:  # "file": a path on this machine (the embedded CLI)
            source = Path(row["source_url"])
            if not source.is_file():
                raise MediaError(f"{source} does not exist or is not a file")
            shutil.copyfile(source, local)
        return False

    def _import(self, row: Row) -> Row:
        video_id = uuid.UUID(row["video_id"])
        limits = self.config
        max_bytes = self.settings.max_source_bytes  # the API's upload limit too
        with tempfile.TemporaryDirectory(prefix="cf-import-") as tmp:
            local = Path(tmp) / "source"  # named in user-facing errors
            from_upload = self._fetch_source(row, local)
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
        return {
            "job_id": row["job_id"],
            "original_key": key,
            "size_bytes": size,
            "duration_s": info.duration_s,
            "width": info.width,
            "height": info.height,
            "fps": info.fps,
            "has_audio": info.has_audio,
            "from_upload": from_upload,
            "error": "",
        }


class ImportStage:
    """Driver side of the import stage."""

    name = "import"
    missing = "video row not found"

    def __init__(
        self, settings: Settings, config: ImportConfig, lifecycle: Lifecycle, telemetry: Telemetry
    ) -> None:
        self.lifecycle = lifecycle
        self.settings = settings
        self._store: ObjectStore | None = None  # the driver's, made on first use
        self.claim_batch_size = config.claim_batch_size
        self.runners = config.actors
        self.actors = ActorSet(
            self.name,
            ImportActor,
            (settings, config),
            count=config.actors,
            num_cpus=config.num_cpus,
            telemetry=telemetry,
        )

    def load(self, conn: Conn, jobs: Sequence[Job]) -> dict[int, Row]:
        """Each job's source (one query)."""
        videos = get_videos(conn, video_ids=[j.video_id for j in jobs if j.video_id])
        return {
            j.id: {
                "job_id": j.id,
                "video_id": str(v.id),
                "source_kind": v.source_kind,
                "source_url": v.source_url or "",
                "original_key": v.original_key or "",
            }
            for j in jobs
            if (v := videos.get(video_of(j))) is not None
        }

    def execute(self, inputs: Mapping[int, Row]) -> dict[int, Row | Exception]:
        """One actor call per video."""
        rows = list(inputs.values())
        answers = self.actors.map("run", rows)
        return {int(r["job_id"]): a for r, a in zip(rows, answers, strict=True)}

    def commit(self, job: Job, output: Row) -> JobResult:
        """Record the media facts and move the video on to transcription."""

        def write(conn: Conn) -> None:
            facts = {k: output[k] for k in _MEDIA_FACTS}
            update_video(conn, video_id=video_of(job), error=None, **facts)
            self.lifecycle.advance(conn, job, "transcribe", status="transcribing")

        follow_up = self.lifecycle.after(job, ("video",), seconds=output["duration_s"])

        def after_commit() -> None:
            follow_up()
            if output.get("from_upload"):
                # Imported: the original holds the same bytes, so the upload is not kept as a
                # second copy. Left behind by a crash here, the upload sweep removes it.
                if self._store is None:
                    self._store = create_store(self.settings)
                self._store.delete(upload_key(video_of(job)))

        return JobResult(on_commit=write, after_commit=after_commit)
