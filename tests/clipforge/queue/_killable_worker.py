"""A queue worker process for the SIGKILL test: claims jobs, reports them, then hangs."""

from __future__ import annotations

import sys
import threading

from clipforge.db.pool import create_pool
from clipforge.queue import Job, JobResult, QueuePolicy, QueueRunner, RunnerOptions
from clipforge.settings import load_settings


def main() -> None:
    database_url, worker_id, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pool = create_pool(load_settings(database_url=database_url), database_url, max_size=3)
    claimed = threading.Event()

    def handler(job: Job) -> JobResult:
        print(f"running {job.id}", flush=True)
        claimed.set()
        threading.Event().wait()  # hang while the heartbeat keeps the lease alive
        raise AssertionError("unreachable")

    options = RunnerOptions(
        policy=QueuePolicy.defaults().replace(lease_s=1.5, heartbeat_s=0.3),
        batch_size=batch,
        idle_poll_s=0.1,
    )
    QueueRunner(pool, {"test": handler}, worker_id=worker_id, options=options).run()


if __name__ == "__main__":
    main()
