"""Pipeline fixtures: settings on the real Postgres + S3-compatible server, a small config."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
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


#: Makes a pipeline worker of a given config (and optional worker id).
WorkerOf = Callable[..., PipelineWorker]


@pytest.fixture()
def worker_of(
    db: Pool, pipeline_settings: Settings, database_url: str, ray_local: None
) -> Iterator[WorkerOf]:
    """Workers with a config of the test's own on the test database and the session's Ray,
    closed after the test (their warm actors hold CPUs of the session's Ray)."""
    made: list[PipelineWorker] = []

    def make(config: PipelineConfig, worker_id: str | None = None) -> PipelineWorker:
        made.append(
            PipelineWorker(
                pipeline_settings, config, db, database_url=database_url, worker_id=worker_id
            )
        )
        return made[-1]

    yield make
    for w in made:
        w.close()


@pytest.fixture()
def worker(worker_of: WorkerOf, pipeline_config: PipelineConfig) -> PipelineWorker:
    """A pipeline worker of the tests' small config on the test database and the session's Ray."""
    return worker_of(pipeline_config, "test-worker")


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
