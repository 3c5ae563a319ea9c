"""The warm stage engine: models load once per actor, killed actors, attempts, backfill failures."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast

import ray

from clipforge.db.pool import Pool
from clipforge.metrics import MODEL_LOADS, OBJECT_CACHE
from clipforge.settings import Settings
from clipforge.storage import create_store
from clipforge.webhooks import create_webhook
from pipelines.batch.backfill import BackfillRequest, run_backfill
from pipelines.config import PipelineConfig
from pipelines.engine.worker import PipelineWorker
from tests.pipelines.conftest import upload_video, url_video
from tests.pipelines.test_worker import _row_counts, _states
from tests.utils.factories import make_key
from tests.utils.wait import wait_until


def _loads() -> dict[str, float]:
    return {m: MODEL_LOADS.labels(model=m)._value.get() for m in ("asr", "text_encoder")}


def test_three_batches_load_each_model_once_per_actor(
    worker: PipelineWorker,
    db: Pool,
    pipeline_settings: Settings,
    pipeline_config: PipelineConfig,
    test_media: dict[str, Path],
) -> None:
    before = _loads()
    hits = OBJECT_CACHE.labels(result="hit")._value.get()
    for _ in range(3):  # three separate batches (and runs) through one worker
        upload_video(db, pipeline_settings, test_media["speech_short"])
        worker.run(until_idle=True)
    assert set(_states(db).values()) == {("ready", None)} and len(_states(db)) == 3
    loaded = {m: n - before[m] for m, n in _loads().items()}
    assert loaded == {
        "asr": pipeline_config.transcribe.asr_actors,
        "text_encoder": pipeline_config.detect.actors,
    }
    # Transcribe and detect read what import left in the node cache instead of downloading.
    assert OBJECT_CACHE.labels(result="hit")._value.get() - hits >= 6


def _wait_running(pool: Pool, kind: str, deadline_s: float = 120) -> bool:
    def running() -> bool:
        with pool.connection() as conn:
            row = conn.execute(
                "SELECT count(*) AS n FROM jobs WHERE kind = %s AND state = 'running'", (kind,)
            ).fetchone()
        return bool(row and row["n"])

    return wait_until(running, timeout_s=deadline_s, interval_s=0.02, what=f"a {kind} job running")


def test_stage_actors_killed_mid_batch_lose_and_duplicate_nothing(
    worker: PipelineWorker, db: Pool, pipeline_settings: Settings, test_media: dict[str, Path]
) -> None:
    videos = [upload_video(db, pipeline_settings, test_media["speech_short"]) for _ in range(3)]
    asr, detect = worker.stages[1].actors, worker.stages[2].actors
    # The kills below hit loaded actors (a load is reported once it ends). Only the two pools
    # they hit are warmed up front; import's starts with its work, as in a worker's first run
    # (`worker.wait_ready()` also booted an export process that nothing here calls).
    worker.start()
    for stage_pool in (asr.pool, detect.pool):
        stage_pool.start()
    for stage_pool in (asr.pool, detect.pool):
        stage_pool.wait_ready()
    before = _loads()
    runner = threading.Thread(target=worker.run, kwargs={"until_idle": True})
    runner.start()
    assert _wait_running(db, "transcribe")
    ray.kill(asr.pool.actors[0], no_restart=False)  # Ray restarts it; the call in flight is retried
    assert _wait_running(db, "detect")
    ray.kill(detect.pool.actors[0], no_restart=False)
    runner.join(timeout=300)

    def all_ready() -> bool:
        return all(s == ("ready", None) for s in _states(db).values())

    def rerun_and_check() -> bool:  # a call that failed twice is retried by the queue
        if all_ready():
            return True
        worker.run(until_idle=True)
        return all_ready()

    wait_until(rerun_and_check, timeout_s=180, interval_s=0.5, what=lambda: _states(db))
    counts = _row_counts(db)
    assert len(counts) == 3
    for row in counts:
        n = cast("dict[str, int]", row)  # the count columns of _row_counts
        assert n["transcripts"] == 1 and n["words"] == n["distinct_words"] > 20
        assert n["clips"] == n["ranks"] >= 1 and n["done_jobs"] == 3
    store = create_store(pipeline_settings)
    for video in videos:
        keys = [i.key for i in store.list_page(f"videos/{video.id}/").items]
        assert keys == [f"videos/{video.id}/audio.flac", f"videos/{video.id}/original.mp4"]
    # Each restarted actor loaded its model again, once; the counter shows it.
    assert {m: n - before[m] for m, n in _loads().items()} == {"asr": 1, "text_encoder": 1}


@contextmanager
def _source_server(path: Path) -> Iterator[tuple[str, threading.Event]]:
    """Serves `path` over HTTP on 127.0.0.1 until `broken` is set, then answers 500."""
    data, broken = path.read_bytes(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if broken.is_set():
                self.send_error(500)
                return
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/talk.mp4", broken
    finally:
        server.shutdown()


def test_failed_backfill_leaves_a_ready_video_ready_and_attempts_come_from_settings(
    db: Pool,
    pipeline_settings: Settings,
    pipeline_config: PipelineConfig,
    database_url: str,
    test_media: dict[str, Path],
    ray_local: None,
) -> None:
    settings = pipeline_settings.model_copy(
        update={
            "fetch_allow_cidrs": ["127.0.0.0/8"],
            "queue_max_attempts": 2,  # QUEUE_MAX_ATTEMPTS
            "queue_backoff_base_s": 0.01,
            "queue_backoff_max_s": 0.05,
        }
    )
    key, _ = make_key(db)
    with db.connection() as conn:
        create_webhook(
            conn,
            owner_key_id=key.id,
            url="https://hooks.example.com/cf",
            events=["video.ready", "video.failed"],
            resolver=lambda host, port: ["93.184.216.34"],
        )
    with _source_server(test_media["speech_short"]) as (url, broken):
        video = url_video(db, url)
        with db.connection() as conn:
            conn.execute("UPDATE videos SET owner_key_id = %s WHERE id = %s", (key.id, video.id))
        with PipelineWorker(settings, pipeline_config, db, database_url=database_url) as worker:
            worker.run(until_idle=True)
        assert _states(db)[str(video.id)] == ("ready", None)
        broken.set()  # the source now fails: re-importing it fails, retryably
        request = BackfillRequest(stage="import", run_id="reimport")
        for _ in range(5):  # resuming the run retries a job still waiting out its backoff
            run_backfill(settings, db, pipeline_config, request, database_url=database_url)
            with db.connection() as conn:
                job = conn.execute(
                    "SELECT state, attempts, max_attempts, last_error FROM jobs"
                    " WHERE kind = 'backfill-import'"
                ).fetchone()
            if job is not None and job["state"] == "dead":
                break

    assert job is not None
    assert (job["state"], job["attempts"], job["max_attempts"]) == ("dead", 2, 2)
    assert "source URL answered 500" in job["last_error"]
    assert _states(db)[str(video.id)] == ("ready", None)  # the video is as it was
    with db.connection() as conn:
        attempts = {
            r["kind"]: r["max_attempts"]
            for r in conn.execute("SELECT kind, max_attempts FROM jobs WHERE kind <> 'webhook'")
        }
        events = [
            r["event"]
            for r in conn.execute("SELECT event FROM webhook_deliveries ORDER BY created_at")
        ]
    # Jobs the pipeline enqueues take QUEUE_MAX_ATTEMPTS (the test enqueued import itself).
    assert attempts["transcribe"] == attempts["detect"] == 2
    assert events == ["video.ready"]  # no video.failed for a failed backfill


def test_parts_of_a_track_tile_it_exactly(test_media: dict[str, Path], tmp_path: Path) -> None:
    """Parts cut on different actors share their boundaries: keep spans tile the whole track."""
    from clipforge.media import decode_audio, iter_audio
    from clipforge.media.track import extract_track
    from models.chunking import ChunkOptions
    from pipelines.stages.audio import ChunkStream

    track = extract_track(test_media["speech_long"], tmp_path / "audio.flac")
    samples = decode_audio(track)
    start = 16000 * 300 + 5  # seeking is sample-exact
    assert (next(iter_audio(track, start=start))[:16000] == samples[start : start + 16000]).all()

    duration = len(samples) / 16000
    streams = [
        ChunkStream(
            track,
            ChunkOptions(),
            start_s=p * duration / 3,
            end_s=(p + 1) * duration / 3 if p < 2 else None,
            first_index=p * 1000,
        )
        for p in range(3)
    ]
    chunks = [c for s in streams for c in s]
    spans = sorted((c.keep_start_s, c.keep_end_s) for c in chunks)
    assert spans[0][0] == 0 and abs(spans[-1][1] - duration) < 1e-6
    assert streams[-1].end_s == duration
    assert all(abs(a[1] - b[0]) < 1e-9 for a, b in itertools.pairwise(spans))
    assert len({c.index for c in chunks}) == len(chunks)
    assert max(c.duration_s for c in chunks) <= 30


def test_storage_clients_of_a_process_share_one_breaker_seen_by_the_driver(
    pipeline_settings: Settings,
) -> None:
    """Failures add up across rows (one breaker per process and endpoint) and an actor's open
    breaker shows in the driver's `clipforge_circuit_breaker_open{breaker="s3"}`."""
    from clipforge.metrics import BREAKER_STATE
    from clipforge.storage import S3Store
    from pipelines.stages.actors import Telemetry

    first, second = S3Store(pipeline_settings), S3Store(pipeline_settings)
    assert first._breaker is second._breaker
    telemetry = Telemetry()
    report = {"pid": 1, "loads": [], "breakers": {"s3": True}, "cache_hits": 0, "cache_misses": 0}
    telemetry.absorb("import", 0, report)  # type: ignore[arg-type]
    assert BREAKER_STATE.labels(breaker="s3")._value.get() == 1
    telemetry.absorb("import", 0, report | {"breakers": {"s3": False}})  # type: ignore[arg-type]
    assert BREAKER_STATE.labels(breaker="s3")._value.get() == 0
