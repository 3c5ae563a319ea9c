"""Jobs delayed by an outage are woken when a probe sees the dependency back.

Real Postgres, a real S3-compatible server (`nanio`) stopped and started again, a real
`QueueRunner` and `DependencyWaker`. The jobs' dependency backoff is long (30-60 s for the first
wait): without the wake-up none could finish within 15 s of S3's return; with it, all do.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest

from clipforge.db.pool import Pool
from clipforge.metrics import JOBS_WOKEN
from clipforge.queue import (
    Backoff,
    Job,
    JobResult,
    QueuePolicy,
    QueueRunner,
    RunnerOptions,
    enqueue,
)
from clipforge.queue.wake import DependencyWaker, wake_waiting
from clipforge.settings import load_settings
from clipforge.storage import S3Store
from tests.clipforge.queue.conftest import NANIO_KEY, NANIO_SECRET
from tests.utils.servers import NanioServer
from tests.utils.wait import wait_until

_KEY, _SECRET = NANIO_KEY, NANIO_SECRET  # the `nanio` fixture's (conftest.py)
BACK_WITHIN_S = 15.0


def _states(db: Pool) -> list[str]:
    with db.connection() as conn:
        return [r["state"] for r in conn.execute("SELECT state FROM jobs ORDER BY id").fetchall()]


def _waiting(db: Pool) -> int:
    with db.connection() as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM jobs WHERE state = 'queued' AND waiting_on = 's3'"
        ).fetchone()
    return int(row["n"]) if row else 0


def test_jobs_waiting_on_s3_run_within_15_s_of_its_return(
    db: Pool, nanio: NanioServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = load_settings(
        environment="test",
        s3_endpoint_url=nanio.url,
        s3_bucket=f"wake-{uuid.uuid4().hex[:8]}",
        s3_access_key_id=_KEY,
        s3_secret_access_key=_SECRET,
    )
    store = S3Store(settings)
    store.ensure_bucket()

    def handler(job: Job) -> JobResult:
        store.put_bytes(f"wake/{job.id}.bin", b"%d" % job.id)
        return JobResult()

    options = RunnerOptions(
        policy=QueuePolicy.defaults().replace(
            lease_s=20.0,
            heartbeat_s=5.0,
            dependency_backoff=Backoff(base_s=60.0, cap_s=60.0),  # the first wait: 30-60 s
        ),
        batch_size=4,
        idle_poll_s=0.5,
    )
    runner = QueueRunner(db, {"test": handler}, worker_id="wake-runner", options=options)
    waker = DependencyWaker(db, {"s3": store.probe}, interval_s=1.0, per_s=50.0)
    woken_before = JOBS_WOKEN.labels(dependency="s3")._value.get()
    nanio.stop()
    with db.connection() as conn:
        for _ in range(8):
            enqueue(conn, QueuePolicy.defaults(), kind="test", max_attempts=2)
    threads = [threading.Thread(target=t.run, daemon=True) for t in (runner, waker)]
    for thread in threads:
        thread.start()
    try:
        # Every job meets the outage and sleeps out its long backoff.
        wait_until(
            lambda: _waiting(db) >= 8, timeout_s=120, interval_s=0.2, what=lambda: _states(db)
        )
        time.sleep(2.0)  # probes run meanwhile, fail, and wake nothing
        assert _waiting(db) == 8
        nanio.start()
        back = time.monotonic()
        wait_until(
            lambda: _states(db) == ["succeeded"] * 8,
            timeout_s=BACK_WITHIN_S,
            interval_s=0.1,
            what=lambda: _states(db),
        )
        elapsed = time.monotonic() - back
    finally:
        runner.stop.set()
        waker.stop.set()
        for thread in threads:
            thread.join(timeout=30)
    print(f"all 8 delayed jobs succeeded {elapsed:.1f} s after S3 came back")
    with db.connection() as conn:
        attempts = [r["attempts"] for r in conn.execute("SELECT attempts FROM jobs").fetchall()]
    assert attempts == [1] * 8  # the outage cost no attempts
    assert JOBS_WOKEN.labels(dependency="s3")._value.get() >= woken_before + 8
    # The probe logged the outage once and the return once, not once per probe.
    probe_lines = [r.getMessage() for r in caplog.records if r.name == "clipforge.queue.wake"]
    assert probe_lines.count("dependency probe: s3 still unavailable") == 1
    assert probe_lines.count("dependency probe: s3 is back") == 1


def test_a_wake_releases_a_bounded_stream_not_a_herd(db: Pool) -> None:
    with db.connection() as conn, conn.transaction():
        ids = [enqueue(conn, QueuePolicy.defaults(), kind="test").id for _ in range(10)]
        conn.execute(
            """UPDATE jobs SET waiting_on = 'redis', waiting_since = now(), dependency_waits = 4,
                      run_after = now() + interval '10 minutes'
               WHERE id = ANY(%s)""",
            (ids[:9],),
        )
        # Jobs due sooner than their turn in the stream keep their own time.
        for job_id, due_s in ((ids[0], 0.2), (ids[1], 0.3)):
            conn.execute(
                "UPDATE jobs SET run_after = now() + make_interval(secs => %s) WHERE id = %s",
                (due_s, job_id),
            )
        woken = wake_waiting(conn, dependency="redis", per_s=2.0)
        rows = conn.execute(
            """SELECT id, dependency_waits, waiting_since IS NOT NULL AS still_waiting,
                      EXTRACT(EPOCH FROM run_after - now()) AS due_in_s
               FROM jobs ORDER BY id"""
        ).fetchall()
    assert woken == 9
    due = [round(float(r["due_in_s"]), 2) for r in rows]
    # The n-th job (oldest due first) after n / 2 s; the one job not waiting is untouched.
    assert due[:9] == [0.0, 0.3, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert all(r["dependency_waits"] == 0 and r["still_waiting"] for r in rows[:9])
    assert rows[9]["due_in_s"] <= 0 and not rows[9]["still_waiting"]
