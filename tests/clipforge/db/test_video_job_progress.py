"""Progress on job rows: what a stage reports while its job runs, summed per stage of a video."""

from __future__ import annotations

from clipforge.db.pool import Pool
from clipforge.db.repo.video_jobs import set_job_progress, video_job_counts
from clipforge.queue import QueuePolicy, claim, complete, enqueue
from tests.utils.factories import make_video


def test_seconds_done_are_read_back_while_running_and_full_once_succeeded(db: Pool) -> None:
    video = make_video(db)
    with db.connection() as conn:
        queued = enqueue(conn, QueuePolicy.defaults(), kind="transcribe", video_id=video.id)
        # Not running yet: a report is ignored (a job's progress belongs to its run).
        set_job_progress(conn, job_id=queued.id, done_s=5.0, total_s=600.0)
        counts = video_job_counts(conn, video_id=video.id)["transcribe"]
        assert (counts.done_s, counts.total_s) == (None, None)
        [job] = claim(conn, worker_id="w1", limit=1, lease_s=30, kinds=["transcribe"])
        set_job_progress(conn, job_id=job.id, done_s=216.5, total_s=600.0)
        counts = video_job_counts(conn, video_id=video.id)["transcribe"]
        assert (counts.done_s, counts.total_s) == (216.5, 600.0)
        assert counts.states["running"] == 1
        complete(conn, job_id=job.id, worker_id="w1")
        set_job_progress(conn, job_id=job.id, done_s=1.0, total_s=600.0)  # too late: ignored
        counts = video_job_counts(conn, video_id=video.id)["transcribe"]
        assert (counts.done_s, counts.total_s) == (600.0, 600.0)
        assert counts.finished == counts.total == 1
        # Stages that report nothing keep counting jobs only.
        enqueue(conn, QueuePolicy.defaults(), kind="detect", video_id=video.id)
        detect = video_job_counts(conn, video_id=video.id)["detect"]
        assert (detect.done_s, detect.total_s, detect.total) == (None, None, 1)
