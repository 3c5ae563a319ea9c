"""Jobs/s for claim + complete through the real queue runner, batch sizes 1/10/100, 1 and 4 workers.

Side by side, in the same run and database: a naive baseline queue that claims with a plain
`FOR UPDATE` (no SKIP LOCKED), where concurrent workers queue up behind each other's row locks.

    python -m benchmarks.queue_throughput [--jobs 2000]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from statistics import median

from psycopg import sql

from benchmarks._db import scratch_database
from clipforge.db.pool import Pool, create_pool
from clipforge.queue import JobResult, QueuePolicy, QueueRunner, RunnerOptions, complete, enqueue
from clipforge.settings import load_settings


def _fill(pool: Pool, n: int) -> None:
    with pool.connection() as conn:
        conn.execute(sql.SQL("TRUNCATE jobs RESTART IDENTITY"))
        with conn.transaction():
            for i in range(n):
                enqueue(conn, QueuePolicy.defaults(), kind="bench", payload={"i": i})


def _run_clipforge(pool: Pool, worker: int, batch: int) -> None:
    options = RunnerOptions(batch_size=batch, idle_poll_s=0.05)
    QueueRunner(
        pool, {"bench": lambda job: JobResult()}, worker_id=f"w{worker}", options=options
    ).run(until_empty=True)


def _run_naive(pool: Pool, worker: int, batch: int) -> None:
    """Baseline: lock rows with plain FOR UPDATE; other workers block until this commits."""
    wid = f"naive{worker}"
    while True:
        with pool.connection() as conn, conn.transaction():
            rows = conn.execute(
                """UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = %s,
                          lease_expires_at = now() + interval '60 seconds'
                   WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT %s FOR UPDATE)
                   RETURNING id""",
                (wid, batch),
            ).fetchall()
        if not rows:
            return
        for row in rows:
            with pool.connection() as conn, conn.transaction():
                complete(conn, job_id=row["id"], worker_id=wid)


def _measure(
    pool: Pool, jobs: int, workers: int, batch: int, run: Callable[[Pool, int, int], None]
) -> float:
    _fill(pool, jobs)
    threads = [threading.Thread(target=run, args=(pool, w, batch)) for w in range(workers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    with pool.connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM jobs WHERE state = 'succeeded'").fetchone()
    assert row is not None and row["n"] == jobs, f"only {row} of {jobs} jobs succeeded"
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is shown")
    args = parser.parse_args()
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f} jobs={args.jobs}")
    print(f"{'workers':>7} {'batch':>5} {'clipforge jobs/s':>17} {'naive FOR UPDATE jobs/s':>24}")
    with scratch_database() as url:
        settings = load_settings(database_url=url)
        with create_pool(settings, url, max_size=12, application_name="bench") as pool:
            for workers in (1, 4):
                for batch in (1, 10, 100):
                    ours, naive = [], []
                    for _ in range(args.repeat):  # interleaved, so load changes hit both alike
                        ours.append(_measure(pool, args.jobs, workers, batch, _run_clipforge))
                        naive.append(_measure(pool, args.jobs, workers, batch, _run_naive))
                    print(f"{workers:>7} {batch:>5} {median(ours):>17.0f} {median(naive):>24.0f}")


if __name__ == "__main__":
    main()
