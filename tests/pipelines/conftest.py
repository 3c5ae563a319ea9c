"""Pipeline fixtures: settings on the real Postgres + S3-compatible server, a small config."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipforge.db.pool import Pool
from clipforge.db.repo.videos import Video, create_video
from clipforge.queue import QueuePolicy, enqueue
from clipforge.settings import Settings
from clipforge.storage import S3Store, create_store
from clipforge.storage.keys import upload_key
from pipelines.config import PipelineConfig, load_pipeline_config
from pipelines.engine.worker import PipelineWorker


@pytest.fixture(scope="session")
def pipeline_settings(settings: Settings, s3_settings: Settings) -> Settings:
    """Database from `settings`, media in the S3-compatible server."""
    merged = settings.model_copy(
        update={
            k: getattr(s3_settings, k)
            for k in (
                "s3_endpoint_url",
                "s3_bucket",
                "s3_access_key_id",
                "s3_secret_access_key",
                "s3_region",
            )
        }
    )
    store = create_store(merged)
    assert isinstance(store, S3Store)
    store.ensure_bucket()
    return merged


@pytest.fixture(scope="session")
def pipeline_config() -> PipelineConfig:
    """The shipped config, scaled down for a 2-core machine and small renders.

    Every stage's actors together ask for 1 CPU, so two workers (a test's worker and a
    backfill's) fit the session's 2-CPU Ray at once. No speaker turns: the voice embeddings
    cost ~0.28 CPU s per second of audio (~7 s per test video, more than its ASR) and the queue,
    pool and backfill tests that share this config check none; the stage with them on is
    tested in test_transcribe_speakers.py, test_process.py, test_api.py and test_serve_app.py.
    """
    return load_pipeline_config(
        transcribe__speaker_turns=False,
        worker__idle_poll_s=0.2,
        transcribe__asr_actors=1,
        transcribe__asr_num_cpus=0.25,
        detect__num_cpus=0.25,
        detect__top_k=2,
        export__short_side=240,
        export__num_cpus=0.25,
    )


@pytest.fixture()
def worker(
    db: Pool,
    pipeline_settings: Settings,
    pipeline_config: PipelineConfig,
    database_url: str,
    ray_local: None,
) -> Iterator[PipelineWorker]:
    """A pipeline worker on the test database and the session's Ray."""
    w = PipelineWorker(
        pipeline_settings, pipeline_config, db, database_url=database_url, worker_id="test-worker"
    )
    yield w
    w.close()  # its warm actors hold CPUs of the session's Ray


def upload_video(pool: Pool, settings: Settings, path: Path) -> Video:
    """A video created the way the upload API does it: object at the upload key + import job."""
    video_id = uuid.uuid4()
    create_store(settings).put_file(upload_key(video_id), path)
    with pool.connection() as conn, conn.transaction():
        video = create_video(conn, owner_key_id=None, source_kind="upload", video_id=video_id)
        enqueue(
            conn,
            QueuePolicy.defaults(),
            kind="import",
            video_id=video.id,
            payload={"video_id": str(video.id)},
        )
    return video


def url_video(pool: Pool, url: str) -> Video:
    """A video created from a source URL + its import job."""
    with pool.connection() as conn, conn.transaction():
        video = create_video(conn, owner_key_id=None, source_kind="url", source_url=url)
        enqueue(
            conn,
            QueuePolicy.defaults(),
            kind="import",
            video_id=video.id,
            payload={"video_id": str(video.id)},
        )
    return video
