"""`clipforge worker`: the long-running queue worker process (a Ray driver)."""

from __future__ import annotations

import logging
import signal
import threading
from functools import partial
from pathlib import Path
from types import FrameType

from prometheus_client import start_http_server

from clipforge.cache import Cache
from clipforge.db.embedded import require_database_url
from clipforge.db.migrate import migrate
from clipforge.db.pool import Pool, create_pool
from clipforge.db.pool_metrics import register_pool_metrics
from clipforge.diskspace import DISK, DiskFloor
from clipforge.observability.setup import init_observability
from clipforge.ops.uploads import sweep_periodically
from clipforge.queue import QueuePolicy, export_queue_metrics
from clipforge.queue.wake import DependencyWaker, Probe
from clipforge.redis_client import create_redis, ping
from clipforge.resilience import OutageLog, dependency_of
from clipforge.settings import Settings
from clipforge.storage import S3Store, create_store
from clipforge.webhooks import webhook_handlers
from pipelines.config import load_pipeline_config
from pipelines.engine.worker import PipelineWorker, ensure_ray

log = logging.getLogger(__name__)


def _export_gauges(pool: Pool, stop: threading.Event, every_s: float = 15.0) -> None:
    outages = OutageLog(
        log,
        down="queue metrics refresh failed: {dependency} unavailable",
        up="queue metrics refresh: {dependency} is back",
    )
    failing: str | None = None  # what it fails on: logged once, then again only once it is back
    while not stop.wait(every_s):
        try:
            with pool.connection() as conn:
                export_queue_metrics(conn)
        except Exception as exc:  # metrics must never take the worker down
            dependency = dependency_of(exc)
            if dependency is not None:
                outages.down(dependency, exc)  # one line per outage, not one per interval
            elif failing is None:  # a bug: its traceback once
                log.exception("queue metrics refresh failed")
            failing = dependency or "error"
            continue
        if failing is not None and failing != "error":
            outages.up(failing)
        failing = None


def _start_recovery_threads(
    settings: Settings, policy: QueuePolicy, pool: Pool, stop: threading.Event
) -> None:
    """Background duties of every worker: wake jobs delayed by an outage once their dependency
    answers again (clipforge.queue.wake), and remove orphaned uploads (clipforge.ops.uploads)."""
    store = create_store(settings)
    probes: dict[str, Probe] = {DISK: DiskFloor(settings).probe}
    if isinstance(store, S3Store):
        probes["s3"] = store.probe
    redis_client = create_redis(settings)
    if redis_client is not None:
        probes["redis"] = partial(ping, redis_client)
    waker = DependencyWaker(
        pool,
        probes,
        interval_s=policy.dependency_probe_s,
        per_s=policy.wake_per_s,
        stop=stop,
    )
    threading.Thread(target=waker.run, name="dependency-waker", daemon=True).start()
    sweep = partial(
        sweep_periodically,
        pool,
        store,
        grace_s=settings.upload_orphan_grace_s,
        every_s=settings.upload_sweep_interval_s,
        stop=stop,
    )
    threading.Thread(target=sweep, name="upload-sweep", daemon=True).start()


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
        worker.gate = DiskFloor(settings).require  # no stage starts on a (nearly) full disk
        gauges_stop = threading.Event()
        threading.Thread(target=_export_gauges, args=(pool, gauges_stop), daemon=True).start()
        _start_recovery_threads(settings, worker.policy, pool, gauges_stop)
        log.info("worker started; SIGTERM or SIGINT stops it gracefully")
        try:
            done = worker.run(until_idle=until_idle)
        finally:
            gauges_stop.set()
            worker.close()  # the stage actors go with the worker (they would die with us anyway)
        log.info("worker stopped", extra={"jobs": done})
        return done
