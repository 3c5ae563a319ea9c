"""The queue worker: a Ray driver that claims batches of stage jobs and runs them on Ray Data.

Claimed jobs are grouped by stage; each group becomes one Ray Data pipeline whose rows are the
jobs (or, for transcription, every audio chunk of every job). The driver alone talks to Postgres:
when a stage's rows come back it writes each job's outputs, completes the job and enqueues the
next stage in one transaction. Stage tasks only read and write object storage, with keys derived
from ids, so a re-run overwrites instead of duplicating.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from clipforge.cache import Cache
from clipforge.db.pool import Conn, Pool
from clipforge.db.repo import clips as clips_repo
from clipforge.db.repo.exports import create_export, get_export, update_export
from clipforge.db.repo.transcripts import get_transcript, replace_transcript
from clipforge.db.repo.videos import VideoStatus, merge_video_metadata, update_video
from clipforge.metrics import VIDEO_SECONDS
from clipforge.queue import (
    Backoff,
    Job,
    JobNotifier,
    JobResult,
    QueueRunner,
    RunnerOptions,
    enqueue,
)
from clipforge.settings import Settings
from clipforge.storage import create_store
from clipforge.storage.keys import video_prefix
from clipforge.webhooks import emit_video_event
from pipelines.config import PipelineConfig
from pipelines.rows import Row, failure_of, guarded, pack, unpack
from pipelines.stages.export import render_row
from pipelines.stages.importer import import_row
from pipelines.stages.transcribe import AsrStage, chunk_rows, merge_rows

log = logging.getLogger(__name__)
STAGES = ("import", "transcribe", "detect", "export")
Outcomes = dict[int, JobResult | Exception]


def ensure_ray() -> None:
    """Connect to RAY_ADDRESS, or start a local Ray, unless this process already has one."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False
        )


class PipelineWorker:
    """Claims stage jobs and runs them as Ray Data pipelines until stopped."""

    def __init__(
        self,
        settings: Settings,
        config: PipelineConfig,
        pool: Pool,
        *,
        database_url: str,
        cache: Cache | None = None,
        worker_id: str | None = None,
        extra_handlers: Mapping[str, Callable[[Job], JobResult | None]] | None = None,
        kind_prefix: str = "",
    ) -> None:
        """`kind_prefix` gives this worker its own job kinds (a backfill claims only its jobs)."""
        self.prefix = kind_prefix
        self.settings = settings
        self.config = config
        self.pool = pool
        self.store = create_store(settings)
        self.cache = cache or Cache(None)
        wc = config.worker
        options = RunnerOptions(
            batch_size=wc.claim_batch_size,
            lease_s=wc.lease_s,
            heartbeat_s=wc.heartbeat_s,
            idle_poll_s=wc.idle_poll_s,
            backoff=Backoff(settings.queue_backoff_base_s, settings.queue_backoff_max_s),
        )
        self.runner = QueueRunner(
            pool,
            dict(extra_handlers or {}),
            worker_id=worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
            options=options,
            notifier=JobNotifier(database_url),
            batch_handlers={
                kind_prefix + "import": self._import_batch,
                kind_prefix + "transcribe": self._transcribe_batch,
                kind_prefix + "detect": self._detect_batch,
                kind_prefix + "export": self._export_batch,
            },
            on_failed=self._on_failed,
        )

    def run(self, *, until_idle: bool = False) -> int:
        """Process jobs until `stop()` (or, with `until_idle`, until no job is runnable)."""
        ensure_ray()
        return self.runner.run(until_empty=until_idle)

    def stop(self) -> None:
        """Stop claiming; the batch in flight finishes and is recorded."""
        self.runner.stop.set()

    # -- stage batch handlers -------------------------------------------------------------

    def _import_batch(self, jobs: list[Job]) -> Outcomes:
        videos = self._videos(jobs)
        rows = [
            {
                "job_id": j.id,
                "video_id": str(j.video_id),
                "source_kind": videos[j.id]["source_kind"],
                "source_url": videos[j.id]["source_url"] or "",
            }
            for j in jobs
            if j.id in videos
        ]
        fn = guarded(partial(import_row, settings=self.settings, config=self.config.import_))
        results = self._run_rows(rows, lambda ds: ds.map(fn, num_cpus=self.config.import_.num_cpus))

        def commit(job: Job, row: Row) -> Callable[[Conn], None]:
            def write(conn: Conn) -> None:
                update_video(
                    conn,
                    video_id=_vid(job),
                    error=None,
                    **{
                        k: row[k]
                        for k in (
                            "original_key",
                            "size_bytes",
                            "duration_s",
                            "width",
                            "height",
                            "fps",
                            "has_audio",
                        )
                    },
                )
                self._advance(conn, job, "transcribe", status="transcribing")

            return write

        return self._outcomes(
            jobs,
            results,
            commit,
            missing="video row not found",
            touched=("video",),
            seconds={job_id: row.get("duration_s") for job_id, row in results.items()},
        )

    def _transcribe_batch(self, jobs: list[Job]) -> Outcomes:
        videos = self._videos(jobs)
        rows = [
            {
                "job_id": j.id,
                "video_id": str(j.video_id),
                "original_key": videos[j.id]["original_key"],
            }
            for j in jobs
            if j.id in videos
        ]
        tc = self.config.transcribe
        import ray

        def build(ds: Any) -> Any:
            return ds.flat_map(
                partial(chunk_rows, settings=self.settings, max_chunk_s=tc.max_chunk_s),
                num_cpus=tc.decode_num_cpus,
            ).map_batches(
                AsrStage,
                fn_constructor_kwargs={"settings": self.settings, "batch_size": tc.asr_batch_size},
                batch_size=tc.asr_batch_size,
                compute=ray.data.ActorPoolStrategy(
                    min_size=tc.asr_actors_min, max_size=tc.asr_actors_max
                ),
                num_cpus=tc.asr_num_cpus,
                num_gpus=tc.asr_num_gpus,
            )

        merged = merge_rows(self._execute(rows, build)) if rows else {}
        outcomes: Outcomes = {}
        for job in jobs:
            transcript = merged.get(job.id, LookupError("video row not found"))
            if isinstance(transcript, Exception):
                outcomes[job.id] = transcript
                continue

            def write(conn: Conn, job: Job = job, transcript: Any = transcript) -> None:
                replace_transcript(conn, video_id=_vid(job), transcript=transcript)
                self._advance(conn, job, "detect", status="detecting")

            outcomes[job.id] = JobResult(
                result={"words": len(transcript.words)},
                on_commit=write,
                after_commit=partial(
                    self._after, job, ("video", "transcript"), seconds=transcript.duration
                ),
            )
        return outcomes

    def _detect_batch(self, jobs: list[Job]) -> Outcomes:
        import ray

        from pipelines.stages.detect import DetectStage

        videos = self._videos(jobs)
        rows = []
        with self.pool.connection() as conn:
            for job in jobs:
                transcript = get_transcript(conn, video_id=_vid(job)) if job.id in videos else None
                if transcript is not None:
                    rows.append(
                        {
                            "job_id": job.id,
                            "original_key": videos[job.id]["original_key"],
                            "transcript": pack(transcript),
                        }
                    )
        dc = self.config.detect
        results = self._run_rows(
            rows,
            lambda ds: ds.map_batches(
                DetectStage,
                fn_constructor_kwargs={"settings": self.settings, "config": dc},
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=dc.actors),
                num_cpus=dc.num_cpus,
            ),
        )

        def commit(job: Job, row: Row) -> Callable[[Conn], None]:
            def write(conn: Conn) -> None:
                stored = clips_repo.replace_clips(
                    conn, video_id=_vid(job), clips=unpack(row["clips"])
                )
                update_video(conn, video_id=_vid(job), status="ready", error=None)
                if job.payload.get("chain", True):  # a backfill re-run is not a new "ready"
                    emit_video_event(conn, video_id=_vid(job), event="video.ready")
                merge_video_metadata(
                    conn,
                    video_id=_vid(job),
                    patch={
                        "highlight_timeline": unpack(row["timeline"]),
                        "clip_model": "clipforge-highlight",
                    },
                )
                auto = dc.auto_export
                if auto.enabled:
                    for clip in stored[: auto.top_n]:
                        export = create_export(
                            conn,
                            clip_id=clip.id,
                            aspect_ratio=auto.aspect_ratio,
                            caption_style=auto.caption_style,
                        )
                        enqueue(
                            conn,
                            kind=self.prefix + "export",
                            video_id=job.video_id,
                            payload={"export_id": str(export.id)},
                            max_attempts=self.config.worker.max_attempts,
                        )

            return write

        return self._outcomes(
            jobs,
            results,
            commit,
            missing="no transcript for this video",
            touched=("video", "clips"),
            sweep=True,
            seconds={job_id: video["duration_s"] for job_id, video in videos.items()},
        )

    def _export_batch(self, jobs: list[Job]) -> Outcomes:
        rows = self._export_rows(jobs)
        fn = guarded(partial(render_row, settings=self.settings, config=self.config.export))
        results = self._run_rows(rows, lambda ds: ds.map(fn, num_cpus=self.config.export.num_cpus))

        def commit(job: Job, row: Row) -> Callable[[Conn], None]:
            def write(conn: Conn) -> None:
                update_export(
                    conn,
                    export_id=uuid.UUID(row["export_id"]),
                    status="ready",
                    error=None,
                    object_key=row["object_key"],
                    thumbnail_key=row["thumbnail_key"],
                    duration_s=row["duration_s"],
                )

            return write

        return self._outcomes(
            jobs, results, commit, missing="export, clip or video not found", touched=("clips",)
        )

    # -- helpers --------------------------------------------------------------------------

    def _videos(self, jobs: list[Job]) -> dict[int, dict[str, Any]]:
        """The video row of each job, in one query."""
        ids = [j.video_id for j in jobs if j.video_id is not None]
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT * FROM videos WHERE id = ANY(%s)", (ids,)).fetchall()
        by_id = {r["id"]: r for r in rows}
        return {j.id: by_id[j.video_id] for j in jobs if j.video_id in by_id}

    def _export_rows(self, jobs: list[Job]) -> list[Row]:
        rows = []
        videos = self._videos(jobs)  # one query for the batch, not one per job
        with self.pool.connection() as conn:
            for job in jobs:
                export = get_export(conn, export_id=uuid.UUID(job.payload["export_id"]))
                clip = clips_repo.get_clip(conn, clip_id=export.clip_id) if export else None
                transcript = get_transcript(conn, video_id=clip.video_id) if clip else None
                video = videos.get(job.id)
                if export is None or clip is None or transcript is None or video is None:
                    continue
                update_export(conn, export_id=export.id, status="rendering")
                words = [
                    w for w in transcript.words if w.end > clip.start_s and w.start < clip.end_s
                ]
                rows.append(
                    {
                        "job_id": job.id,
                        "export_id": str(export.id),
                        "video_id": str(clip.video_id),
                        "original_key": video["original_key"],
                        "start_s": clip.start_s,
                        "end_s": clip.end_s,
                        "aspect_ratio": export.aspect_ratio,
                        "caption_style": export.caption_style,
                        "words": pack(words),
                    }
                )
        return rows

    def _run_rows(self, rows: list[Row], build: Callable[[Any], Any]) -> dict[int, Row]:
        return {int(r["job_id"]): r for r in self._execute(rows, build)} if rows else {}

    @staticmethod
    def _execute(rows: list[Row], build: Callable[[Any], Any]) -> list[Row]:
        import ray

        ds = build(ray.data.from_items(rows, override_num_blocks=max(1, len(rows))))
        return list(ds.take_all())

    def _outcomes(
        self,
        jobs: list[Job],
        results: dict[int, Row],
        commit: Callable[[Job, Row], Callable[[Conn], None]],
        *,
        missing: str,
        touched: tuple[str, ...],
        sweep: bool = False,
        seconds: Mapping[int, float | None] | None = None,
    ) -> Outcomes:
        """Per job: its stage failure, or its commit and after-commit steps.

        `seconds` is each job's video duration for the minutes-of-video counter (none for
        exports, which cover one clip).
        """
        outcomes: Outcomes = {}
        for job in jobs:
            row = results.get(job.id)
            if row is None:
                outcomes[job.id] = LookupError(missing)
            elif (failure := failure_of(row)) is not None:
                outcomes[job.id] = failure
            else:
                after = partial(
                    self._after, job, touched, sweep, seconds=(seconds or {}).get(job.id)
                )
                outcomes[job.id] = JobResult(on_commit=commit(job, row), after_commit=after)
        return outcomes

    def _after(
        self,
        job: Job,
        touched: tuple[str, ...],
        sweep: bool = False,
        *,
        seconds: float | None = None,
    ) -> None:
        """After a stage committed: drop cached reads it changed, delete replaced export files,
        count the video's seconds through this stage."""
        if job.video_id is None:
            return
        for namespace in touched:
            self.cache.invalidate(namespace, str(job.video_id))
        if sweep:
            sweep_orphan_exports(self.settings, self.pool, job.video_id)
        if seconds:
            VIDEO_SECONDS.labels(stage=job.kind.removeprefix(self.prefix)).inc(seconds)

    def _advance(self, conn: Conn, job: Job, stage: str, *, status: VideoStatus) -> None:
        """Enqueue the next stage (unless the job asked not to chain, as a backfill does)."""
        if not job.payload.get("chain", True):
            return
        update_video(conn, video_id=_vid(job), status=status)
        enqueue(
            conn,
            kind=self.prefix + stage,
            video_id=job.video_id,
            payload={"video_id": str(job.video_id)},
            max_attempts=self.config.worker.max_attempts,
        )

    def _on_failed(self, conn: Conn, job: Job, state: str, error: str) -> None:
        """A stage job ended failed/dead: fail its video (or export) with the reason."""
        stage = job.kind.removeprefix(self.prefix)
        if stage == "export" and "export_id" in job.payload:
            update_export(
                conn, export_id=uuid.UUID(job.payload["export_id"]), status="failed", error=error
            )
        elif stage in STAGES and job.video_id is not None:
            update_video(conn, video_id=job.video_id, status="failed", error=f"{stage}: {error}")
            emit_video_event(conn, video_id=job.video_id, event="video.failed")
        # Inside the failing transaction; the tombstone blocks a stale refill until it commits.
        if job.video_id is not None:
            self.cache.invalidate("video", str(job.video_id))


def _vid(job: Job) -> uuid.UUID:
    """The video a stage job belongs to (stage jobs are always enqueued with one)."""
    if job.video_id is None:
        raise LookupError(f"{job.kind} job {job.id} has no video")
    return job.video_id


def sweep_orphan_exports(settings: Settings, pool: Pool, video_id: uuid.UUID) -> int:
    """Delete stored export files whose export row no longer exists (after clips were replaced)."""
    store = create_store(settings)
    with pool.connection() as conn:
        live = {
            str(r["id"])
            for r in conn.execute(
                "SELECT e.id FROM exports e JOIN clips c ON c.id = e.clip_id WHERE c.video_id = %s",
                (video_id,),
            ).fetchall()
        }
    removed = 0
    prefix = video_prefix(video_id) + "exports/"
    token: str | None = None
    while True:
        page = store.list_page(prefix, token=token)
        for item in page.items:
            if item.key[len(prefix) :].split(".", 1)[0] not in live:
                store.delete(item.key)
                removed += 1
        if page.next_token is None:
            return removed
        token = page.next_token
