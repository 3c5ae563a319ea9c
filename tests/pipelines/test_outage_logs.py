"""Logs say what happened once: no false "leases lost", one line per outage state change.

Real Postgres throughout: the heartbeat races a real commit (the commit holds the job's row lock,
so the heartbeat's UPDATE waits and then finds the job already succeeded), and the worker's queue
metrics thread runs against a test-owned server that is stopped and started again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import pytest

from clipforge.db.migrate import migrate
from clipforge.db.pool import Conn, Pool, create_pool
from clipforge.queue import Job, JobResult, QueuePolicy, QueueRunner, RunnerOptions, enqueue
from clipforge.settings import Settings
from tests.utils.servers import PostgresServer
from tests.utils.wait import wait_until


def _runner(db: Pool, handler: object) -> QueueRunner:
    options = RunnerOptions(
        policy=QueuePolicy.defaults().replace(lease_s=10.0, heartbeat_s=0.05),
        batch_size=1,
        idle_poll_s=0.1,
    )
    return QueueRunner(db, {"test": handler}, worker_id="beat-runner", options=options)  # type: ignore[dict-item]


def _run_until(runner: QueueRunner, db: Pool, done: str, count: int) -> None:
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()

    def reached() -> bool:
        with db.connection() as conn:
            row = conn.execute(
                "SELECT count(*) AS n FROM jobs WHERE state = %s", (done,)
            ).fetchone()
        return row is not None and row["n"] >= count

    try:
        wait_until(reached, timeout_s=30, what=f"{count} job(s) {done}")
    finally:
        runner.stop.set()
        thread.join(timeout=10)


def _lost_lines(caplog: pytest.LogCaptureFixture) -> list[object]:
    return [getattr(r, "job_ids", None) for r in caplog.records if r.getMessage() == "leases lost"]


def test_a_job_the_worker_just_committed_is_not_reported_lost(
    db: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    def slow_commit(conn: Conn) -> None:
        time.sleep(0.4)  # the row is locked: heartbeats block here, then see it succeeded

    def handler(job: Job) -> JobResult:
        return JobResult(on_commit=slow_commit)

    with db.connection() as conn:
        for _ in range(3):
            enqueue(conn, QueuePolicy.defaults(), kind="test")
    _run_until(_runner(db, handler), db, "succeeded", 3)
    assert _lost_lines(caplog) == []


def test_a_lease_really_taken_over_is_still_reported(
    db: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    taken = threading.Event()

    def handler(job: Job) -> JobResult:
        with db.connection() as conn:  # another worker took the job over meanwhile
            conn.execute("UPDATE jobs SET lease_owner = 'other-worker' WHERE id = %s", (job.id,))
        with contextlib.suppress(AssertionError):  # the assertion below says what is missing
            wait_until(lambda: _lost_lines(caplog), timeout_s=10)
        taken.set()
        return JobResult()

    with db.connection() as conn:
        job_id = enqueue(conn, QueuePolicy.defaults(), kind="test").id
    runner = _runner(db, handler)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        assert taken.wait(20)
    finally:
        runner.stop.set()
        thread.join(timeout=10)
    assert _lost_lines(caplog) == [[job_id]]


@pytest.fixture()
def owned_pg() -> Iterator[PostgresServer]:
    """A migrated Postgres that only this test uses, so it can be stopped."""
    server = PostgresServer()
    server.start()
    migrate(server.url)
    try:
        yield server
    finally:
        server.close()


def test_the_metrics_thread_logs_an_outage_once_not_every_interval(
    owned_pg: PostgresServer, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from pipelines.engine.main import _export_gauges

    caplog.set_level(logging.INFO)
    fast = settings.model_copy(update={"db_pool_timeout_s": 0.3})
    stop = threading.Event()
    with create_pool(fast, owned_pg.url, min_size=0, max_size=2) as pool:
        thread = threading.Thread(target=_export_gauges, args=(pool, stop, 0.1), daemon=True)
        thread.start()
        try:
            time.sleep(0.5)
            owned_pg.stop()
            time.sleep(3.0)  # ~10 failed refreshes
            owned_pg.start()
            wait_until(
                lambda: any("is back" in r.getMessage() for r in caplog.records),
                timeout_s=30,
                interval_s=0.1,
                what="the 'is back' line",
            )
        finally:
            stop.set()
            thread.join(timeout=10)
    lines = [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "pipelines.engine.main" and r.getMessage().startswith("queue metrics refresh")
    ]
    assert lines == [
        ("WARNING", "queue metrics refresh failed: postgres unavailable"),
        ("INFO", "queue metrics refresh: postgres is back"),
    ]
    assert not any(r.exc_info for r in caplog.records if r.name == "pipelines.engine.main")
