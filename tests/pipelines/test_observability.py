"""Error tracking and tracing end to end: the in-process API and the worker on the session's Ray.

Sentry reports go to a local HTTP server that records every envelope; spans go to the SDK's
in-memory exporter. One module-scoped worker (its warm actors start once) serves every test.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import brotli
import pytest
import sentry_sdk
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from clipforge.db.pool import Pool
from clipforge.db.repo.videos import create_video, update_video
from clipforge.errors import MediaError
from clipforge.observability import tracing
from clipforge.observability.sentry import init_sentry
from clipforge.queue import QueuePolicy, enqueue
from clipforge.settings import Settings
from clipforge.storage import create_store
from pipelines.config import PipelineConfig, load_pipeline_config
from pipelines.engine.worker import PipelineWorker
from pipelines.stages.values import StageError
from serve_apps.api.app import create_app
from serve_apps.api.deps import ApiDeps
from tests.utils.factories import make_key
from tests.utils.wait import wait_until


@dataclass
class Recorder:
    """Envelopes received by the fake Sentry, raw and decoded."""

    raw: list[bytes] = field(default_factory=list)
    decoded: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self) -> list[dict[str, Any]]:
        """Every `event` item of every envelope so far."""
        found: list[dict[str, Any]] = []
        with self.lock:
            bodies = list(self.decoded)
        for body in bodies:
            lines = body.split(b"\n")
            index = 1
            while index + 1 < len(lines):
                header = json.loads(lines[index])
                if header.get("type") == "event":
                    found.append(json.loads(lines[index + 1]))
                index += 2
        return found


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[Recorder, str]]:
    """A local HTTP server standing in for Sentry's ingest; yields it and its DSN."""
    record = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            encoding = self.headers.get("Content-Encoding", "")
            plain = gzip.decompress(body) if encoding == "gzip" else body
            plain = brotli.decompress(body) if encoding == "br" else plain
            with record.lock:
                record.raw.append(body)
                record.decoded.append(plain)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield record, f"http://publickey@127.0.0.1:{server.server_address[1]}/42"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def obs_settings(
    pipeline_settings: Settings, recorder: tuple[Recorder, str], redis_url: str
) -> Settings:
    """Pipeline settings plus Sentry, loopback sources and quick, few retries."""
    return pipeline_settings.model_copy(
        update={
            "sentry_dsn": SecretStr(recorder[1]),
            "fetch_allow_cidrs": ["127.0.0.1/32"],
            "redis_url": redis_url,
            "queue_backoff_base_s": 0.2,
            "queue_backoff_max_s": 0.5,
            "queue_max_attempts": 2,
        }
    )


@pytest.fixture(scope="module")
def sentry_on(obs_settings: Settings) -> Iterator[None]:
    """Sentry reporting from this process (API handlers and the worker's driver) to the fake."""
    assert init_sentry(obs_settings, component="test")
    yield
    sentry_sdk.flush(timeout=5)
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, every span kept in memory."""
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("clipforge-test", exporter=exporter, batch=False)
    yield exporter
    tracing.shutdown_tracing()


@pytest.fixture(scope="module")
def obs_config() -> PipelineConfig:
    """The tests' small config, with one automatic export per video."""
    return load_pipeline_config(
        worker__idle_poll_s=0.2,
        transcribe__asr_actors=1,
        transcribe__asr_num_cpus=0.25,
        detect__num_cpus=0.25,
        detect__top_k=2,
        detect__auto_export={"enabled": True, "top_n": 1},
        export__short_side=240,
        export__num_cpus=0.25,
    )


@pytest.fixture(scope="module")
def obs_worker(
    pool: Pool,
    obs_settings: Settings,
    obs_config: PipelineConfig,
    database_url: str,
    ray_local: None,
    sentry_on: None,
    spans: InMemorySpanExporter,
) -> Iterator[PipelineWorker]:
    """One worker (warm actors) for the module."""
    worker = PipelineWorker(
        obs_settings, obs_config, pool, database_url=database_url, worker_id="obs-worker"
    )
    yield worker
    worker.close()


@pytest.fixture(scope="module")
def api(
    obs_settings: Settings, database_url: str, sentry_on: None, spans: InMemorySpanExporter
) -> Iterator[TestClient]:
    """The API app in-process (created after tracing is on, like `clipforge api`)."""
    deps = ApiDeps.open(
        obs_settings, database_url=database_url, redis_prefix=f"cftest:{uuid.uuid4().hex[:8]}:"
    )
    with TestClient(create_app(deps), raise_server_exceptions=False) as client:
        yield client
    deps.close()


@dataclass
class Obs:
    """What every test here works with: the fake Sentry, the emptied database, the settings and
    the media; the module's worker and API are started when a test first asks for them."""

    record: Recorder
    db: Pool
    settings: Settings
    media: dict[str, Path]
    request: pytest.FixtureRequest

    @property
    def worker(self) -> PipelineWorker:
        worker: PipelineWorker = self.request.getfixturevalue("obs_worker")
        return worker

    @property
    def api(self) -> TestClient:
        client: TestClient = self.request.getfixturevalue("api")
        return client

    def presigned(self, medium: str) -> str:
        """A presigned GET URL of a test medium put into the bucket: a client's own signed
        source URL."""
        path = self.media[medium]
        store = create_store(self.settings)
        key = f"inputs/{uuid.uuid4().hex}{path.suffix}"
        store.put_file(key, path)
        url = store.presign_get(key, expires_s=600)
        assert "X-Amz-Signature=" in url
        return url


@pytest.fixture()
def obs(
    recorder: tuple[Recorder, str],
    db: Pool,
    obs_settings: Settings,
    test_media: dict[str, Path],
    request: pytest.FixtureRequest,
) -> Obs:
    """The tests' shared arguments, in one."""
    return Obs(recorder[0], db, obs_settings, test_media, request)


def _signature(url: str) -> str:
    match = re.search(r"X-Amz-Signature=([0-9a-f]+)", url)
    assert match is not None
    return match.group(1)


def _secrets_absent(record: Recorder, *secrets: str) -> None:
    """No envelope byte (raw or decompressed) holds a secret, nor any unscrubbed signature."""
    with record.lock:
        blobs = [*record.raw, *record.decoded]
    for blob in blobs:
        for secret in secrets:
            assert secret.encode() not in blob
        assert re.search(rb"X-Amz-Signature=[0-9a-f]{16}", blob) is None
        assert re.search(rb"Bearer cf_", blob) is None


def _trace_of(finished: list[ReadableSpan], root: ReadableSpan) -> list[ReadableSpan]:
    assert root.context is not None
    return [
        s for s in finished if s.context is not None and s.context.trace_id == root.context.trace_id
    ]


def _wait_for_events(record: Recorder, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """The events so far, once there are `count` of them or `timeout_s` has passed."""
    sentry_sdk.flush(timeout=5)
    with contextlib.suppress(AssertionError):
        wait_until(lambda: len(record.events()) >= count, timeout_s=timeout_s, interval_s=0.1)
    return record.events()


def test_one_trace_from_post_to_export(obs: Obs, spans: InMemorySpanExporter) -> None:
    """One POST and the worker: one trace whose spans cover the request and every stage, with
    parent links intact across the queue and into the actors."""
    record, db, api, obs_worker = obs.record, obs.db, obs.api, obs.worker
    _, raw_key = make_key(db, "tracing")
    source = obs.presigned("speech_short")
    spans.clear()
    client_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    answer = api.post(
        "/v1/videos",
        json={"source_url": source, "title": "Talk"},
        headers={
            "Authorization": f"Bearer {raw_key}",
            "traceparent": f"00-{client_trace}-00f067aa0ba902b7-01",
        },
    )
    assert answer.status_code == 202, answer.text
    video_id = answer.json()["video"]["id"]
    obs_worker.run(until_idle=True)

    with db.connection() as conn:
        video = conn.execute("SELECT status FROM videos WHERE id = %s", (video_id,)).fetchone()
        jobs = conn.execute(
            "SELECT kind, state, traceparent FROM jobs WHERE video_id = %s ORDER BY id", (video_id,)
        ).fetchall()
    assert video is not None and video["status"] == "ready", jobs
    assert [j["kind"] for j in jobs] == ["import", "transcribe", "detect", "export"]
    assert all(j["state"] == "succeeded" and j["traceparent"] for j in jobs), jobs

    finished = list(spans.get_finished_spans())
    request = next(s for s in finished if s.name == "POST /v1/videos")
    assert request.context is not None and request.parent is not None
    assert f"{request.context.trace_id:032x}" == client_trace  # the client's trace continues
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 202
    trace = _trace_of(finished, request)
    by_id = {s.context.span_id: s for s in trace if s.context is not None}
    # Every span but the request hangs off a span of the same trace (none orphaned).
    for s in trace:
        if s is not request:
            assert s.parent is not None and s.parent.span_id in by_id, s.name

    def ancestors(s: ReadableSpan) -> list[str]:
        names = []
        while s.parent is not None and s.parent.span_id in by_id:
            s = by_id[s.parent.span_id]
            names.append(s.name)
        return names

    for stage in ("import", "transcribe", "detect", "export"):
        job = [s for s in trace if s.name == f"job {stage}"]
        assert len(job) == 1, (stage, [s.name for s in trace])
        assert "POST /v1/videos" in ancestors(job[0])
        hop = [s for s in trace if s.name.startswith(f"ray {stage}.")]
        assert hop and all(by_id[h.parent.span_id] is job[0] for h in hop if h.parent), stage
    names = [s.name for s in trace]
    for expected in ("queue.claim", "queue.commit", "storage.put", "storage.fetch", "ffmpeg"):
        assert expected in names, (expected, names)
    # Actor spans come from the actor processes, parented on the driver's hop spans.
    actor_root = next(s for s in trace if s.name == "ImportActor.run")
    assert (
        actor_root.parent is not None and by_id[actor_root.parent.span_id].name == "ray import.run"
    )
    assert actor_root.resource.attributes["process.pid"] != request.resource.attributes.get(
        "process.pid"
    )
    ffmpeg_steps = {
        str((s.attributes or {}).get("ffmpeg.step")) for s in trace if s.name == "ffmpeg"
    }
    assert {"audio_track", "render"} <= ffmpeg_steps, ffmpeg_steps
    # A successful run reports nothing, and its presigned source URL reached no report.
    assert _wait_for_events(record, 0, timeout_s=0) == []
    _secrets_absent(record, raw_key, _signature(source))


def _job_state(pool: Pool, job_id: int) -> str:
    with pool.connection() as conn:
        row = conn.execute("SELECT state FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return str(row["state"])


def test_unexpected_stage_failure_is_reported_once(obs: Obs) -> None:
    """A video row with a NaN duration (a corrupted row) breaks transcription on every attempt:
    one event when the job is dead, not one per attempt, tagged with the job, video and stage."""
    record, db, obs_worker = obs.record, obs.db, obs.worker
    before = len(_wait_for_events(record, 0, timeout_s=0))
    source = obs.presigned("speech_short")
    with db.connection() as conn, conn.transaction():
        video = create_video(conn, owner_key_id=None, source_kind="url", source_url=source)
        update_video(
            conn,
            video_id=video.id,
            status="transcribing",
            original_key=f"videos/{video.id}/original.mp4",
            duration_s=float("nan"),
        )
        job = enqueue(
            conn,
            QueuePolicy.defaults(),
            kind="transcribe",
            video_id=video.id,
            payload={"video_id": str(video.id)},
            max_attempts=2,
        )
    obs_worker.run(until=lambda: _job_state(db, job.id) in ("dead", "failed"))
    with db.connection() as conn:
        row = conn.execute("SELECT state, attempts FROM jobs WHERE id = %s", (job.id,)).fetchone()
    assert row is not None and (row["state"], row["attempts"]) == ("dead", 2)

    events = _wait_for_events(record, before + 1)[before:]
    time.sleep(0.5)  # a duplicate (the first attempt, or an actor's own report) would be late
    events = _wait_for_events(record, before + 1)[before:]
    assert len(events) == 1, [e.get("tags") for e in events]
    event = events[0]
    tags = event["tags"]
    assert tags["job_id"] == str(job.id) and tags["video_id"] == str(video.id)
    assert tags["stage"] == "transcribe" and tags["component"] == "test"
    assert re.fullmatch(r"[0-9a-f]{32}", tags["trace_id"])  # leads to the job's trace
    assert event["exception"]["values"][-1]["type"] == "ValueError"
    assert event["release"].startswith("clipforge@") and event["environment"] == "test"
    _secrets_absent(record, _signature(source))


def test_bad_media_reports_nothing(obs: Obs) -> None:
    """A corrupt source fails its job at once (bad input): nothing is sent."""
    record, db, api, obs_worker = obs.record, obs.db, obs.api, obs.worker
    before = len(_wait_for_events(record, 0, timeout_s=0))
    _, raw_key = make_key(db, "bad-media")
    source = obs.presigned("corrupt")
    answer = api.post(
        "/v1/videos", json={"source_url": source}, headers={"Authorization": f"Bearer {raw_key}"}
    )
    assert answer.status_code == 202, answer.text
    obs_worker.run(until_idle=True)
    with db.connection() as conn:
        video = conn.execute(
            "SELECT status, error FROM videos WHERE id = %s", (answer.json()["video"]["id"],)
        ).fetchone()
    assert video is not None and video["status"] == "failed" and "import" in video["error"]
    time.sleep(0.5)  # an event (sent late by an actor) would have arrived by now
    assert len(_wait_for_events(record, before, timeout_s=0)) == before
    _secrets_absent(record, raw_key, _signature(source))


def test_unexpected_api_error_is_reported_once_and_scrubbed(obs: Obs) -> None:
    """A video whose stored metadata is not an object (a corrupted row) breaks the video list:
    a 500 and one event tagged with the request id, in which the caller's key, its
    Authorization header and the presigned source URL in the handler's locals are scrubbed."""
    record, db, api = obs.record, obs.db, obs.api
    before = len(_wait_for_events(record, 0, timeout_s=0))
    key, raw_key = make_key(db, "api-error")
    source = obs.presigned("speech_short")
    with db.connection() as conn, conn.transaction():
        video = create_video(conn, owner_key_id=key.id, source_kind="url", source_url=source)
        conn.execute(
            "UPDATE videos SET metadata = '[\"not an object\"]'::jsonb WHERE id = %s", (video.id,)
        )
    answer = api.get("/v1/videos", headers={"Authorization": f"Bearer {raw_key}"})
    assert answer.status_code == 500, answer.text
    request_id = answer.headers["X-Request-ID"]

    events = _wait_for_events(record, before + 1)[before:]
    time.sleep(0.5)  # a duplicate would be late
    events = _wait_for_events(record, before + 1)[before:]
    assert len(events) == 1, [e.get("tags") for e in events]
    event = events[0]
    assert event["tags"]["request_id"] == request_id
    assert re.fullmatch(r"[0-9a-f]{32}", event["tags"]["trace_id"])
    assert event["exception"]["values"][-1]["type"] == "ValidationError"
    # The secrets were in the event before scrubbing: the headers, the video's source URL.
    text = json.dumps(event)
    assert "X-Amz-Signature=[Filtered]" in text, text[:2000]
    assert "[Filtered]" in text
    _secrets_absent(record, raw_key, _signature(source))


def test_an_actor_failure_keeps_its_traceback_for_the_report() -> None:
    """An unexpected error inside a stage actor crosses to the driver as a `StageError` value;
    the failure rebuilt from it carries the actor's traceback (Sentry shows exception notes)."""

    def decode(words: list[dict[str, Any]]) -> float:
        return float(words[0]["start"])

    try:
        decode([{"begin": 1.0}])
    except KeyError as exc:
        error = StageError.of(7, exc)
    assert error.failure.retryable and error.traceback is not None
    failure = error.exception()
    assert "KeyError" in str(failure)
    assert any("in decode" in note for note in getattr(failure, "__notes__", []))
    # Bad input keeps no traceback: it is not reported.
    assert StageError.of(7, MediaError("corrupt")).traceback is None
