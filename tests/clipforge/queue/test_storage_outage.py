"""Jobs that write to storage outlive an S3 outage without spending attempts.

A test-owned `nanio` is stopped for longer than the old retry budget at this test's settings
(3 attempts, 0.2 s base: about 0.6 s of retries) and started again. Every job must end
`succeeded` on its own, with one attempt and no re-drive, and the S3 breaker must open and close.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
import uuid

import boto3
import pytest
from botocore.config import Config

from clipforge.db.pool import Pool
from clipforge.errors import MediaError, dependency_in_description
from clipforge.metrics import BREAKER_STATE, JOBS_WAITING_DEPENDENCY
from clipforge.queue import (
    Backoff,
    Job,
    JobResult,
    QueuePolicy,
    QueueRunner,
    RunnerOptions,
    enqueue,
)
from clipforge.resilience import Failure, RecordedFailure, classify_failure, dependency_of
from clipforge.settings import Settings, load_settings
from clipforge.storage import S3Store
from tests.clipforge.queue.conftest import NANIO_KEY, NANIO_SECRET
from tests.utils.servers import NanioServer
from tests.utils.wait import wait_until

OUTAGE_S = 8.0
_KEY, _SECRET = NANIO_KEY, NANIO_SECRET  # the `nanio` fixture's (conftest.py)


def _store(server: NanioServer) -> S3Store:
    settings: Settings = load_settings(
        environment="test",
        s3_endpoint_url=server.url,
        s3_bucket=f"outage-{uuid.uuid4().hex[:8]}",
        s3_access_key_id=_KEY,
        s3_secret_access_key=_SECRET,
    )
    # A real client, with boto's own retries scaled down like the test's other timings.
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=_KEY,
        aws_secret_access_key=_SECRET,
        config=Config(
            retries={"mode": "standard", "max_attempts": 2},
            connect_timeout=1,
            read_timeout=5,
            s3={"addressing_style": "path"},
        ),
    )
    store = S3Store(settings, client=client)
    store.ensure_bucket()
    return store


def _breaker_open() -> float:
    return float(BREAKER_STATE.labels(breaker="s3")._value.get())


def test_jobs_wait_out_an_s3_outage_without_spending_attempts(
    db: Pool, nanio: NanioServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = _store(nanio)

    def handler(job: Job) -> JobResult:
        info = store.put_bytes(f"outage/{job.id}.bin", b"clip bytes %d" % job.id)
        return JobResult(result={"etag": info.etag})

    options = RunnerOptions(
        policy=QueuePolicy.defaults().replace(
            lease_s=10.0,
            heartbeat_s=2.0,
            backoff=Backoff(base_s=0.2, cap_s=0.4),  # the old, short budget for real failures
            dependency_backoff=Backoff(base_s=0.3, cap_s=1.0),
            dependency_horizon_s=600.0,
        ),
        batch_size=2,
        idle_poll_s=0.2,
    )
    runner = QueueRunner(db, {"test": handler}, worker_id="s3-outage", options=options)
    waits_before = JOBS_WAITING_DEPENDENCY.labels(kind="test", dependency="s3")._value.get()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            runner.run()
        except BaseException as exc:  # the assertion is that nothing gets here
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    nanio.stop()
    with db.connection() as conn:
        ids = [
            enqueue(conn, QueuePolicy.defaults(), kind="test", max_attempts=3).id for _ in range(6)
        ]
    thread.start()
    opened = False
    try:
        deadline = time.monotonic() + OUTAGE_S
        while time.monotonic() < deadline:
            opened = opened or _breaker_open() == 1.0
            time.sleep(0.1)
        nanio.start()

        def states() -> list[str]:
            with db.connection() as conn:
                rows = conn.execute("SELECT state FROM jobs ORDER BY id").fetchall()
            return [r["state"] for r in rows]

        def all_succeeded() -> bool:
            now = states()
            assert "dead" not in now and "failed" not in now, now
            return now == ["succeeded"] * len(ids)

        wait_until(all_succeeded, timeout_s=40, interval_s=0.2, what=states)
    finally:
        runner.stop.set()
        thread.join(timeout=30)
    assert not errors
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT attempts, waiting_on, dependency_waits, last_error FROM jobs ORDER BY id"
        ).fetchall()
    # Attempts were not spent: the only one counted is the one that succeeded.
    assert [r["attempts"] for r in rows] == [1] * len(ids)
    assert all(r["waiting_on"] is None and r["dependency_waits"] == 0 for r in rows)
    assert any(dependency_in_description(r["last_error"] or "") == "s3" for r in rows)
    assert JOBS_WAITING_DEPENDENCY.labels(kind="test", dependency="s3")._value.get() > waits_before
    assert all(store.head(f"outage/{job_id}.bin") is not None for job_id in ids)
    # The breaker opened during the outage and closed after it, with a log line for each.
    assert opened and _breaker_open() == 0.0
    messages = [r.getMessage() for r in caplog.records if getattr(r, "breaker", None) == "s3"]
    assert "circuit opened" in messages and "circuit closed" in messages


def test_outage_classification_survives_the_actor_boundary() -> None:
    """A failure classified in a stage actor crosses to the driver as its `Failure` value
    (pickled, as Ray sends it) and is rebuilt there as the same outage, without parsing text."""
    failure = classify_failure(_s3_down())
    assert failure.dependency == "s3" and failure.retryable is True
    rebuilt = RecordedFailure(pickle.loads(pickle.dumps(failure)))
    assert classify_failure(rebuilt) == failure and dependency_of(rebuilt) == "s3"
    assert rebuilt.describe() == failure.error
    bad_input = RecordedFailure(classify_failure(MediaError("no audio")))
    assert dependency_of(bad_input) is None
    assert classify_failure(bad_input) == Failure("MediaError: no audio", False, None)


def test_outages_inside_ray_task_errors_are_recognised() -> None:
    from psycopg_pool import PoolTimeout
    from ray.exceptions import RayTaskError

    for cause, dependency in (
        (_s3_down(), "s3"),
        (PoolTimeout("no connection"), "postgres"),
        (ConnectionRefusedError(111, "refused"), "network"),
        (ValueError("bad frame"), None),
    ):
        wrapped = RayTaskError("stage", "traceback", cause)
        for exc in (wrapped, wrapped.as_instanceof_cause()):
            failure = classify_failure(exc)
            assert failure.dependency == dependency
            assert type(cause).__name__ in failure.error


def _s3_down() -> Exception:
    from botocore.exceptions import EndpointConnectionError

    from clipforge.errors import DependencyUnavailable

    try:
        try:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
        except EndpointConnectionError as exc:
            raise DependencyUnavailable("s3 unavailable", dependency="s3") from exc
    except DependencyUnavailable as wrapped:
        return wrapped
