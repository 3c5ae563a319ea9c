"""The video lifecycle in one place: advance to the next stage, become ready, fail, tell webhooks.

Stage modules call these from inside the transaction that completes their job, so a video's
status, its next job and its webhook event commit together with the stage's outputs. A backfill
job (payload `chain: false`) re-runs one stage of a finished video: it neither chains nor moves
the video's status on success, and on failure it leaves the video as it was; the failure is
recorded on the job only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from clipforge.db.pool import Conn, Pool
from clipforge.db.repo.exports import live_export_ids, update_export
from clipforge.db.repo.videos import VideoStatus, update_video
from clipforge.metrics import VIDEO_SECONDS
from clipforge.queue import Job, QueuePolicy, enqueue
from clipforge.settings import Settings
from clipforge.stages import STAGE_NAMES
from clipforge.storage import create_store
from clipforge.storage.keys import video_prefix
from clipforge.webhooks import emit_video_event

if TYPE_CHECKING:  # a stage actor imports this module too, and needs no Redis client
    from clipforge.cache import Cache


def video_of(job: Job) -> uuid.UUID:
    """The video a stage job belongs to (stage jobs are always enqueued with one)."""
    if job.video_id is None:
        raise LookupError(f"{job.kind} job {job.id} has no video")
    return job.video_id


def chains(job: Job) -> bool:
    """False for backfill jobs: they re-run one stage and leave the video's lifecycle alone."""
    return bool(job.payload.get("chain", True))


class Lifecycle:
    """Moves videos through the stages; shared by every stage of one worker."""

    def __init__(
        self,
        settings: Settings,
        policy: QueuePolicy,
        pool: Pool,
        *,
        cache: Cache,
        kind_prefix: str = "",
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.cache = cache
        self.prefix = kind_prefix
        self.policy = policy  # the worker's, built once from the QUEUE_* settings

    def enqueue(self, conn: Conn, stage: str, video_id: uuid.UUID, payload: dict[str, Any]) -> Job:
        """Enqueue a job of `stage` (of this worker's kind family) under the worker's policy."""
        return enqueue(
            conn, self.policy, kind=self.prefix + stage, video_id=video_id, payload=payload
        )

    def advance(self, conn: Conn, job: Job, stage: str, *, status: VideoStatus) -> None:
        """Set the video's status and enqueue its next stage (not for a backfill job)."""
        if not chains(job):
            return
        update_video(conn, video_id=video_of(job), status=status)
        self.enqueue(conn, stage, video_of(job), {"video_id": str(job.video_id)})

    def mark_ready(self, conn: Conn, job: Job) -> None:
        """The video has clips: ready (a backfill re-run is not a new "ready" for webhooks)."""
        update_video(conn, video_id=video_of(job), status="ready", error=None)
        if chains(job):
            emit_video_event(conn, self.policy, video_id=video_of(job), event="video.ready")

    def on_failed(self, conn: Conn, job: Job, state: str, error: str) -> None:
        """A stage job ended failed/dead: fail its export, or its video unless a backfill."""
        stage = job.kind.removeprefix(self.prefix)
        if stage == "export" and "export_id" in job.payload:
            update_export(
                conn, export_id=uuid.UUID(job.payload["export_id"]), status="failed", error=error
            )
        elif stage in STAGE_NAMES and job.video_id is not None and chains(job):
            update_video(conn, video_id=job.video_id, status="failed", error=f"{stage}: {error}")
            emit_video_event(conn, self.policy, video_id=job.video_id, event="video.failed")
        # Inside the failing transaction; the tombstone blocks a stale refill until it commits.
        if job.video_id is not None:
            self.cache.invalidate("video", str(job.video_id))

    def after(
        self,
        job: Job,
        touched: tuple[str, ...],
        *,
        sweep: bool = False,
        seconds: float | None = None,
    ) -> Callable[[], None]:
        """After a stage committed: drop cached reads it changed, delete replaced export files,
        count the video's seconds through this stage."""

        def follow_up() -> None:
            if job.video_id is None:
                return
            for namespace in touched:
                self.cache.invalidate(namespace, str(job.video_id))
            if sweep:
                sweep_orphan_exports(self.settings, self.pool, job.video_id)
            if seconds:
                VIDEO_SECONDS.labels(stage=job.kind.removeprefix(self.prefix)).inc(seconds)

        return follow_up


def sweep_orphan_exports(settings: Settings, pool: Pool, video_id: uuid.UUID) -> int:
    """Delete stored export files whose export row no longer exists (after clips were replaced)."""
    store = create_store(settings)
    with pool.connection() as conn:
        live = {str(i) for i in live_export_ids(conn, video_id=video_id)}
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
