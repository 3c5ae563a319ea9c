"""A queue-worker metrics endpoint for the live Prometheus test, run as its own process.

    python -m tests.cluster.worker_probe --port N --database-url URL

It serves the process's prometheus_client registry with `start_http_server` (as
`clipforge worker --metrics-port` does), runs the real `QueueRunner` on the `cluster-probe` job
kind (claims, heartbeats, completions, so the claim/finish/duration metrics are real), refreshes
the queue gauges every second (the worker's own refresh is every 15 s) and exports its Postgres
pool through `clipforge.db.pool_metrics`. Unlike `clipforge worker` it needs no Ray, which keeps
the test well under a minute on two cores.
"""

from __future__ import annotations

import argparse
import signal
import threading

from prometheus_client import start_http_server

from clipforge.db.pool import create_pool
from clipforge.db.pool_metrics import register_pool_metrics
from clipforge.queue import JobResult, QueuePolicy, QueueRunner, RunnerOptions, export_queue_metrics
from clipforge.settings import load_settings

KIND = "cluster-probe"


def main() -> None:
    """Serve metrics and run `cluster-probe` jobs until SIGTERM."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    settings = load_settings(database_url=args.database_url, environment="test")
    with create_pool(settings, args.database_url, application_name="clipforge-worker") as pool:
        register_pool_metrics(pool)
        runner = QueueRunner(
            pool,
            {KIND: lambda job: JobResult(result={"probe": True})},
            worker_id="cluster-probe",
            options=RunnerOptions(
                policy=QueuePolicy.defaults().replace(heartbeat_s=5, lease_s=30),
                batch_size=5,
                idle_poll_s=0.2,
            ),
        )
        signal.signal(signal.SIGTERM, lambda *_: runner.stop.set())
        stop = threading.Event()

        def refresh() -> None:
            while not stop.wait(1.0):
                with pool.connection() as conn:
                    export_queue_metrics(conn)

        threading.Thread(target=refresh, daemon=True).start()
        start_http_server(args.port, addr="127.0.0.1")
        try:
            runner.run()
        finally:
            stop.set()


if __name__ == "__main__":
    main()
