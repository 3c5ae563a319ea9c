"""The queue runner rides out a Postgres outage: a test-owned server is stopped and restarted.

Outages are scaled down (about 8 s, against a 1 s pool timeout and short backoffs) but longer
than the pool timeout, which is what used to end the worker: the LISTEN connection broke the
idle loop, and a busy worker's commit and failure write both raised `PoolTimeout`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from psycopg_pool import PoolTimeout

from clipforge.db.migrate import migrate
from clipforge.db.pool import Conn, Pool, create_pool
from clipforge.queue import (
    Backoff,
    Job,
    JobNotifier,
    JobResult,
    QueuePolicy,
    QueueRunner,
    RunnerOptions,
    claim,
    complete,
    enqueue,
)
from clipforge.settings import load_settings
from tests.utils.servers import PostgresServer
from tests.utils.wait import wait_until

OUTAGE_S = 8.0
POOL_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def owned_pg() -> Iterator[PostgresServer]:
    """A migrated Postgres that only this module uses, so it can be stopped."""
    server = PostgresServer()
    server.start()
    migrate(server.url)
    with server_conn(server) as conn:
        conn.execute("CREATE TABLE outage_rows (job_id bigint NOT NULL, written_by text NOT NULL)")
    try:
        yield server
    finally:
        server.close()


def server_conn(server: PostgresServer) -> Conn:
    import psycopg
    from psycopg.rows import dict_row

    return psycopg.connect(server.url, autocommit=True, row_factory=dict_row)


@pytest.fixture()
def owned_pool(owned_pg: PostgresServer) -> Iterator[Pool]:
    """A pool with a short checkout timeout, on emptied tables."""
    if not _accepts(owned_pg):
        owned_pg.start()
    with server_conn(owned_pg) as conn:
        conn.execute("TRUNCATE jobs, outage_rows RESTART IDENTITY CASCADE")
    settings = load_settings(
        database_url=owned_pg.url, environment="test", db_pool_timeout_s=POOL_TIMEOUT_S
    )
    with create_pool(settings, owned_pg.url, application_name="outage-test", max_size=4) as pool:
        yield pool


def _accepts(server: PostgresServer) -> bool:
    try:
        server_conn(server).close()
    except Exception:
        return False
    return True


def _options(**policy: object) -> RunnerOptions:
    leases: dict[str, object] = {"lease_s": 5.0, "heartbeat_s": 1.0}
    return RunnerOptions(
        policy=QueuePolicy.defaults().replace(**(leases | policy)),
        batch_size=10,
        idle_poll_s=0.5,
        outage_backoff=Backoff(base_s=0.2, cap_s=1.0),
    )


@dataclass
class RunnerThread:
    """A runner on its own thread that records anything escaping `run`."""

    runner: QueueRunner
    errors: list[BaseException] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> None:
        def target() -> None:
            try:
                self.runner.run()
            except BaseException as exc:  # the assertion is that nothing gets here
                self.errors.append(exc)

        self.thread = threading.Thread(target=target, name=self.runner.worker_id, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.runner.stop.set()
        assert self.thread is not None
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def _writes_row(worker: str) -> Callable[[Job], JobResult]:
    """A real handler: its output row is written in the job's completing transaction."""

    def handler(job: Job) -> JobResult:
        def write(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO outage_rows (job_id, written_by) VALUES (%s, %s)", (job.id, worker)
            )

        return JobResult(result={"by": worker}, on_commit=write)

    return handler


def _enqueue(pool: Pool, count: int) -> list[int]:
    # The pool may still be reconnecting right after a restart (as clients would, retry).
    deadline = time.monotonic() + 20
    while True:
        try:
            with pool.connection() as conn:
                return [
                    enqueue(conn, QueuePolicy.defaults(), kind="test", payload={"n": n}).id
                    for n in range(count)
                ]
        except PoolTimeout:
            if time.monotonic() > deadline:
                raise


def _outcome(pool: Pool) -> tuple[list[tuple[str, int]], dict[int, int]]:
    with pool.connection() as conn:
        jobs = conn.execute("SELECT state, attempts FROM jobs ORDER BY id").fetchall()
        rows = conn.execute(
            "SELECT job_id, count(*) AS n FROM outage_rows GROUP BY job_id"
        ).fetchall()
    return [(j["state"], j["attempts"]) for j in jobs], {r["job_id"]: r["n"] for r in rows}


def _all_succeeded(pool: Pool, count: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            states, _ = _outcome(pool)
        except Exception:  # still reconnecting
            return False
        return len(states) == count and all(s == "succeeded" for s, _ in states)

    return check


def test_idle_runner_survives_a_postgres_restart(
    owned_pg: PostgresServer, owned_pool: Pool
) -> None:
    runner = QueueRunner(
        owned_pool,
        {"test": _writes_row("idle")},
        worker_id="idle",
        options=_options(),
        notifier=JobNotifier(owned_pg.url),
    )
    worker = RunnerThread(runner)
    worker.start()
    try:
        time.sleep(1.0)  # idle, sleeping on LISTEN
        owned_pg.stop()
        time.sleep(OUTAGE_S)
        assert worker.thread is not None and worker.thread.is_alive() and not worker.errors
        owned_pg.start()
        ids = _enqueue(owned_pool, 5)
        wait_until(_all_succeeded(owned_pool, 5), timeout_s=30)
    finally:
        worker.stop()
    assert not worker.errors
    states, rows = _outcome(owned_pool)
    assert states == [("succeeded", 1)] * 5
    assert rows == {job_id: 1 for job_id in ids}


def test_busy_runner_keeps_results_through_an_outage_and_commits_once(
    owned_pg: PostgresServer, owned_pool: Pool
) -> None:
    ids = _enqueue(owned_pool, 6)
    handler_running = threading.Event()
    database_stopped = threading.Event()
    write_row = _writes_row("busy")

    def handler(job: Job) -> JobResult:
        handler_running.set()
        # The first job finishes only once the database is gone, so every commit of the batch
        # meets the outage (and outlasts the pool timeout and the lease).
        assert database_stopped.wait(30)
        return write_row(job)

    runner = QueueRunner(
        owned_pool,
        {"test": handler},
        worker_id="busy",
        options=_options(lease_s=3.0),
        notifier=JobNotifier(owned_pg.url),
    )
    worker = RunnerThread(runner)
    worker.start()
    try:
        assert handler_running.wait(10)
        owned_pg.stop()
        database_stopped.set()
        time.sleep(OUTAGE_S)
        assert worker.thread is not None and worker.thread.is_alive() and not worker.errors
        owned_pg.start()
        wait_until(_all_succeeded(owned_pool, 6), timeout_s=30)
    finally:
        worker.stop()
    assert not worker.errors
    states, rows = _outcome(owned_pool)
    # One attempt each: the results computed before the outage were kept and committed.
    assert states == [("succeeded", 1)] * 6
    assert rows == {job_id: 1 for job_id in ids}


def test_commit_after_the_lease_moved_on_writes_nothing(owned_pool: Pool) -> None:
    """A worker cut off past its lease finds another worker owns the job: no double write."""
    (job_id,) = _enqueue(owned_pool, 1)
    rival_claimed = threading.Event()

    def slow(job: Job) -> JobResult:
        # Meanwhile the lease lapses and a rival takes the job over (its own attempt).
        time.sleep(1.2)
        with owned_pool.connection() as conn:
            (taken,) = claim(conn, worker_id="rival", limit=1, lease_s=30)
        assert taken.id == job.id
        rival_claimed.set()
        return _writes_row("late")(job)

    late = QueueRunner(
        owned_pool,
        {"test": slow},
        worker_id="late",
        # No heartbeat within the test: the lease lapses as if the database had been away.
        options=_options(lease_s=1.0, heartbeat_s=60.0),
    )
    assert late.run_once() == 1
    assert rival_claimed.is_set()
    with owned_pool.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM outage_rows").fetchone() == {"n": 0}
        conn.execute("INSERT INTO outage_rows (job_id, written_by) VALUES (%s, 'rival')", (job_id,))
        complete(conn, job_id=job_id, worker_id="rival")
    states, rows = _outcome(owned_pool)
    assert states == [("succeeded", 2)]
    assert rows == {job_id: 1}
