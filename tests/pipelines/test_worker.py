"""The queue-driven worker: many videos, bad inputs, and a worker killed mid-transcription."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clipforge.db.pool import Pool
from clipforge.db.repo.videos import create_video
from clipforge.queue import QueuePolicy, enqueue
from clipforge.settings import Settings
from clipforge.storage import create_store
from clipforge.webhooks import create_webhook
from pipelines.config import PipelineConfig
from pipelines.engine.worker import PipelineWorker
from tests.pipelines._ready_clip import queue_exports, ready_clip
from tests.pipelines.conftest import upload_video, url_video
from tests.utils.factories import make_key
from tests.utils.wait import wait_until

_REPO = Path(__file__).resolve().parents[2]


def _states(pool: Pool) -> dict[str, tuple[str, str | None]]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT id, status, error FROM videos").fetchall()
    return {str(r["id"]): (r["status"], r["error"]) for r in rows}


def _row_counts(pool: Pool) -> list[dict[str, object]]:
    with pool.connection() as conn:
        return conn.execute(
            """SELECT v.id,
                      (SELECT count(*) FROM transcripts t WHERE t.video_id = v.id) AS transcripts,
                      (SELECT count(*) FROM transcript_words w WHERE w.video_id = v.id) AS words,
                      (SELECT count(DISTINCT idx) FROM transcript_words w WHERE w.video_id = v.id) AS distinct_words,
                      (SELECT count(*) FROM clips c WHERE c.video_id = v.id) AS clips,
                      (SELECT count(DISTINCT rank) FROM clips c WHERE c.video_id = v.id) AS ranks,
                      (SELECT count(*) FROM jobs j WHERE j.video_id = v.id AND j.state = 'succeeded') AS done_jobs
               FROM videos v WHERE v.status = 'ready'"""
        ).fetchall()


def test_one_worker_drains_good_and_bad_videos(
    worker: PipelineWorker, db: Pool, pipeline_settings: Settings, test_media: dict[str, Path]
) -> None:
    key, _ = make_key(db)
    with db.connection() as conn:
        create_webhook(
            conn,
            owner_key_id=key.id,
            url="https://hooks.example.com/cf",
            events=["video.ready", "video.failed"],
            resolver=lambda host, port: ["93.184.216.34"],
        )  # no DNS here; never contacted
    good = [upload_video(db, pipeline_settings, test_media["speech_short"]) for _ in range(5)]
    corrupt = upload_video(db, pipeline_settings, test_media["corrupt"])
    with db.connection() as conn:  # owned by the key with the webhook: its events are delivered
        conn.execute(
            "UPDATE videos SET owner_key_id = %s WHERE id = ANY(%s)",
            (key.id, [good[0].id, corrupt.id]),
        )
    silent = upload_video(db, pipeline_settings, test_media["silent"])
    private = url_video(db, "http://10.0.0.5/internal/video.mp4")
    worker.run(until_idle=True)

    states = _states(db)
    assert all(states[str(v.id)] == ("ready", None) for v in good), states
    assert states[str(corrupt.id)][0] == "failed" and "import" in str(states[str(corrupt.id)][1])
    assert (
        "corrupt" in str(states[str(corrupt.id)][1]).lower()
        or "invalid" in str(states[str(corrupt.id)][1]).lower()
    )
    assert states[str(silent.id)] == (
        "failed",
        "transcribe: MediaError: no speech detected in the audio track",
    )
    assert states[str(private.id)][0] == "failed" and "source URL refused" in str(
        states[str(private.id)][1]
    )
    with db.connection() as conn:
        bad_jobs = conn.execute(
            "SELECT state, attempts FROM jobs WHERE video_id = ANY(%s)",
            ([corrupt.id, silent.id, private.id],),
        ).fetchall()
    # Bad input fails at once (no pointless retries).
    assert {(r["state"], r["attempts"]) for r in bad_jobs} == {("succeeded", 1), ("failed", 1)}

    with db.connection() as conn:
        events = conn.execute(
            "SELECT d.event, d.payload->'data'->>'video_id' AS video FROM webhook_deliveries d"
            " JOIN jobs j ON j.payload->>'delivery_id' = d.id::text AND j.kind = 'webhook'"
        ).fetchall()
    assert sorted((e["event"], e["video"]) for e in events) == sorted(
        [("video.ready", str(good[0].id)), ("video.failed", str(corrupt.id))]
    )

    counts = _row_counts(db)
    assert len(counts) == 5
    for row in counts:
        assert (
            row["transcripts"] == 1 and row["words"] == row["distinct_words"] and row["words"] > 20
        )
        assert row["clips"] == row["ranks"] >= 1
        assert row["done_jobs"] == 3  # import, transcribe, detect: each ran to success once


def _start_worker(database_url: str, settings: Settings, tmp_path: Path) -> subprocess.Popen[bytes]:
    """`clipforge worker` as its own process, on the session's Ray, with a 4 s lease."""
    import ray

    config = tmp_path / "pipeline.yaml"
    config.write_text(
        "worker: {idle_poll_s: 0.2}\n"
        "transcribe: {asr_actors: 1, asr_num_cpus: 0.25}\n"
        "detect: {num_cpus: 0.25, top_k: 2}\n"
    )
    secret = settings.s3_secret_access_key
    env = os.environ | {
        "DATABASE_URL": database_url,
        "S3_ENDPOINT_URL": str(settings.s3_endpoint_url),
        "S3_BUCKET": str(settings.s3_bucket),
        "S3_ACCESS_KEY_ID": str(settings.s3_access_key_id),
        "S3_SECRET_ACCESS_KEY": secret.get_secret_value() if secret else "",
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "PYTHONPATH": str(_REPO),
        "QUEUE_LEASE_S": "4",
        "QUEUE_HEARTBEAT_S": "1",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clipforge.cli",
            "worker",
            "--config",
            str(config),
            "--metrics-port",
            "0",
        ],
        env=env,
        cwd=_REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for_running(pool: Pool, proc: subprocess.Popen[bytes], kind: str) -> None:
    def running() -> bool:
        with pool.connection() as conn:
            row = conn.execute(
                "SELECT count(*) AS n FROM jobs WHERE kind = %s AND state = 'running'", (kind,)
            ).fetchone()
        if row and row["n"] > 0:
            return True
        assert proc.poll() is None, "worker exited early"
        return False

    wait_until(running, timeout_s=120, interval_s=0.2, what=f"the worker to start a {kind} job")


def test_sigterm_finishes_the_batch_in_flight_and_exits(
    db: Pool,
    pipeline_settings: Settings,
    test_media: dict[str, Path],
    database_url: str,
    tmp_path: Path,
    ray_local: None,
) -> None:
    video = upload_video(db, pipeline_settings, test_media["speech_short"])
    proc = _start_worker(database_url, pipeline_settings, tmp_path)
    try:
        _wait_for_running(db, proc, "transcribe")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with db.connection() as conn:
        jobs = {
            r["kind"]: r["state"]
            for r in conn.execute(
                "SELECT kind, state FROM jobs WHERE video_id = %s", (video.id,)
            ).fetchall()
        }
    # The transcription in flight was finished and recorded; nothing new was claimed after it.
    assert jobs == {"import": "succeeded", "transcribe": "succeeded", "detect": "queued"}


def test_killed_worker_loses_nothing(
    worker: PipelineWorker,
    db: Pool,
    pipeline_settings: Settings,
    test_media: dict[str, Path],
    database_url: str,
    tmp_path: Path,
) -> None:
    videos = [upload_video(db, pipeline_settings, test_media["speech_short"]) for _ in range(2)]
    proc = _start_worker(database_url, pipeline_settings, tmp_path)
    try:
        _wait_for_running(db, proc, "transcribe")
        time.sleep(1.0)  # well inside transcription
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()

    def all_ready() -> bool:
        return all(s == ("ready", None) for s in _states(db).values())

    def take_over() -> bool:  # the dead worker's leases expire after 4 s, then we take over
        if all_ready():
            return True
        worker.run(until_idle=True)
        return all_ready()

    wait_until(take_over, timeout_s=180, interval_s=0.5, what=lambda: _states(db))
    with db.connection() as conn:
        retried = conn.execute(
            "SELECT attempts, last_error FROM jobs WHERE kind = 'transcribe' AND attempts > 1"
        ).fetchall()
    assert retried and all("lease expired" in r["last_error"] for r in retried)
    counts = _row_counts(db)
    assert len(counts) == 2
    assert all(
        r["transcripts"] == 1 and r["words"] == r["distinct_words"] and r["done_jobs"] == 3
        for r in counts
    )
    store = create_store(pipeline_settings)
    for video in videos:
        keys = [i.key for i in store.list_page(f"videos/{video.id}/").items]
        assert keys == [f"videos/{video.id}/audio.flac", f"videos/{video.id}/original.mp4"]


def test_worker_with_only_exports_queued_starts_no_asr_actor(
    worker: PipelineWorker, db: Pool, pipeline_settings: Settings, test_media: dict[str, Path]
) -> None:
    # The state of a worker restarted while only an export waits.
    video_id, clip_id = ready_clip(db, pipeline_settings, test_media["speech_short"])
    [export_id] = queue_exports(db, video_id, clip_id, 1)

    assert worker.run(until_idle=True) == 1
    with db.connection() as conn:
        row = conn.execute("SELECT status FROM exports WHERE id = %s", (export_id,)).fetchone()
    assert row is not None and row["status"] == "ready"
    started = {pool.stage: len(pool.starts) for pool in worker.pools}
    # Export shares its processes with import (the shipped `worker.shared_pools`).
    assert started == {"import+export": 1, "transcribe": 0, "detect": 0}
    assert {pool.stage: pool.size for pool in worker.pools}["transcribe"] == 0


@pytest.fixture()
def worker_of(
    db: Pool, pipeline_settings: Settings, database_url: str, ray_local: None
) -> Iterator[Callable[[PipelineConfig], PipelineWorker]]:
    """Workers with a config of the test's own on the test database and the session's Ray,
    closed after the test (their actors hold CPUs of the session's Ray)."""
    made: list[PipelineWorker] = []

    def make(config: PipelineConfig) -> PipelineWorker:
        made.append(PipelineWorker(pipeline_settings, config, db, database_url=database_url))
        return made[-1]

    yield make
    for worker in made:
        worker.close()


def _queue(db: Pool, kinds: list[str]) -> None:
    """One job of each kind, each for a new video (nothing is stored: only sizing reads them)."""
    with db.connection() as conn, conn.transaction():
        for kind in kinds:
            video = create_video(conn, owner_key_id=None, source_kind="upload")
            payload = {"video_id": str(video.id)}
            enqueue(conn, QueuePolicy.defaults(), kind=kind, video_id=video.id, payload=payload)


def test_asr_pool_grows_one_actor_per_job_and_other_pools_per_two(
    worker_of: Callable[[PipelineConfig], PipelineWorker], db: Pool, pipeline_config: PipelineConfig
) -> None:
    # Two videos waiting for ASR and two for detection. An ASR actor's threads are a fixed share
    # of the node (cores / asr_actors), so one actor for both videos would leave cores idle;
    # detect keeps `worker.work_per_actor` (2 jobs per actor).
    config = pipeline_config.model_copy(
        update={
            "worker": pipeline_config.worker.model_copy(update={"one_load_per_pool": False}),
            "transcribe": pipeline_config.transcribe.model_copy(update={"asr_actors": 2}),
            "detect": pipeline_config.detect.model_copy(update={"actors": 2}),
        }
    )
    _queue(db, ["transcribe", "transcribe", "detect", "detect"])
    worker = worker_of(config)
    worker.start()
    sizes = worker.scale_pools()
    assert sizes["transcribe"] == 2
    assert sizes["detect"] == 1


def test_a_pool_learns_of_its_loaded_actor_before_its_stage_calls_it(
    worker_of: Callable[[PipelineConfig], PipelineWorker], db: Pool, pipeline_config: PipelineConfig
) -> None:
    # Four detections queued and a detect pool of two, one model load at a time: its second
    # actor may start once the first has loaded. Nothing claims the jobs here, so no stage
    # call ever tells the pool that the first has loaded: sizing the pools must find out.
    config = pipeline_config.model_copy(
        update={"detect": pipeline_config.detect.model_copy(update={"actors": 2})}
    )
    assert config.worker.one_load_per_pool
    _queue(db, ["detect"] * 4)
    worker = worker_of(config)
    worker.start()
    [detect] = [p for p in worker.pools if p.stage == "detect"]
    assert worker.scale_pools()["detect"] == 1
    wait_until(
        lambda: worker.scale_pools()["detect"] == 2,
        timeout_s=120,
        interval_s=0.25,
        what="a 2nd actor",
    )
    first = detect.starts[0]
    assert first.ready is not None and first.ready < detect.starts[1].requested
