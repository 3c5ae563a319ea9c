"""`clipforge worker`: the long-running queue worker process (a Ray driver)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from prometheus_client import start_http_server

from clipforge.cache import Cache
from clipforge.db.embedded import require_database_url
from clipforge.db.migrate import migrate
from clipforge.db.pool import Pool, create_pool
from clipforge.db.pool_metrics import register_pool_metrics
from clipforge.observability.setup import init_observability
from clipforge.queue import export_queue_metrics
from clipforge.redis_client import create_redis
from clipforge.settings import Settings
from clipforge.webhooks import webhook_handlers
from pipelines.config import load_pipeline_config
from pipelines.worker import PipelineWorker, ensure_ray

log = logging.getLogger(__name__)


def _export_gauges(pool: Pool, stop: threading.Event, every_s: float = 15.0) -> None:
    while not stop.wait(every_s):
        try:
            with pool.connection() as conn:
                export_queue_metrics(conn)
        except Exception:  # metrics must never take the worker down
            log.exception("queue metrics refresh failed")


def run_worker(
    settings: Settings,
    *,
    config_path: Path | None = None,
    metrics_port: int | None = 9101,
    until_idle: bool = False,
) -> int:
    """Run the worker until SIGTERM/SIGINT (or until idle); returns the number of jobs run."""
    config = load_pipeline_config(config_path)
    init_observability(settings, "worker")  # Sentry and tracing, each only if configured
    database_url = require_database_url(settings, who="worker")
    migrate(database_url)
    if metrics_port:
        start_http_server(metrics_port)
    with create_pool(settings, database_url, application_name="clipforge-worker") as pool:
        register_pool_metrics(pool)
        worker = PipelineWorker(
            settings,
            config,
            pool,
            database_url=database_url,
            cache=Cache(create_redis(settings)),
            extra_handlers=webhook_handlers(pool, settings),  # webhook deliveries ride along
        )

        # Connect first: ray.init installs its own SIGTERM handler (exit at once), ours replaces it.
        ensure_ray()

        def _stop(signum: int, _frame: FrameType | None) -> None:
            log.info("stopping: finishing the batch in flight", extra={"signal": signum})
            worker.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        gauges_stop = threading.Event()
        threading.Thread(target=_export_gauges, args=(pool, gauges_stop), daemon=True).start()
        log.info("worker started; SIGTERM or SIGINT stops it gracefully")
        try:
            done = worker.run(until_idle=until_idle)
        finally:
            gauges_stop.set()
            worker.close()  # the stage actors go with the worker (they would die with us anyway)
        log.info("worker stopped", extra={"jobs": done})
        return done
