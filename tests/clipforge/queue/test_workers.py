"""Many workers and dying workers: every job runs to success exactly once."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from clipforge.db.pool import Pool
from clipforge.queue import Job, JobResult, QueueRunner, RunnerOptions
from tests.utils.factories import enqueue_many
from tests.utils.wait import wait_until

_REPO = Path(__file__).resolve().parents[3]


def test_eight_workers_drain_2000_jobs_exactly_once(db: Pool) -> None:
    jobs = enqueue_many(db, 2000)
    runs: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()

    def handler(job: Job) -> JobResult:
        with lock:
            runs[job.id] += 1
        return JobResult(result={"by": threading.current_thread().name})

    runners = [
        QueueRunner(db, {"test": handler}, worker_id=f"w{i}", options=RunnerOptions(batch_size=10))
        for i in range(8)
    ]
    threads = [
        threading.Thread(target=r.run, kwargs={"until_empty": True}, name=r.worker_id)
        for r in runners
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)

    assert set(runs) == {j.id for j in jobs}
    assert set(runs.values()) == {1}
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT state, attempts, count(*) AS n, count(DISTINCT result->>'by') AS workers"
            " FROM jobs GROUP BY state, attempts"
        ).fetchall()
    assert len(rows) == 1
    assert rows[0]["state"] == "succeeded" and rows[0]["attempts"] == 1 and rows[0]["n"] == 2000
    assert rows[0]["workers"] > 1  # the work really was shared


def test_sigkilled_worker_loses_nothing(db: Pool, database_url: str) -> None:
    jobs = enqueue_many(db, 3)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.clipforge.queue._killable_worker",
            database_url,
            "doomed",
            "3",
        ],
        cwd=_REPO,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(_REPO)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("running")
        # While it lives, its heartbeat keeps the 1.5 s lease alive well past 1.5 s.
        time.sleep(2.0)
        with db.connection() as conn:
            held = conn.execute(
                "SELECT count(*) AS n FROM jobs WHERE lease_owner = 'doomed'"
            ).fetchone()
        assert held == {"n": 3}
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()

    runs: collections.Counter[int] = collections.Counter()
    rescuer = QueueRunner(
        db,
        {"test": lambda job: runs.update([job.id]) or JobResult()},
        worker_id="rescuer",
        options=RunnerOptions(batch_size=10, idle_poll_s=0.1),
    )

    def rescued() -> bool:
        rescuer.run_once()
        return len(runs) >= 3

    wait_until(rescued, timeout_s=15, interval_s=0.1, what=lambda: dict(runs))
    assert runs == {j.id: 1 for j in jobs}
    with db.connection() as conn:
        rows = conn.execute("SELECT state, attempts, last_error FROM jobs ORDER BY id").fetchall()
    assert [r["state"] for r in rows] == ["succeeded"] * 3
    # The first attempt (lost with the killed worker) counted; the second succeeded.
    assert [r["attempts"] for r in rows] == [2, 2, 2]
    assert all("lease expired: worker doomed" in r["last_error"] for r in rows)
