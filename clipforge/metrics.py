"""Prometheus metrics of the API and worker processes.

Processes we start ourselves (uvicorn API, queue worker driver) export these through
prometheus-client. Code running inside Ray actors (Serve replicas, stage actors, a Ray Data
backfill's workers) must use `ray.util.metrics` instead, because Ray only exports metrics
recorded through its own API from its workers; `ray_counter` / `ray_histogram` give those the
same names.

Several uvicorn workers per API instance share one port, so a scrape reaches one worker at a
time: with PROMETHEUS_MULTIPROC_DIR set (`clipforge api --workers N` sets it) every process
writes its samples to files there and `render()` adds them up, so /metrics shows the instance.
Gauges say how they combine across processes (`multiprocess_mode`; ignored in one process).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)
_JOB_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

HTTP_REQUESTS = Counter(
    "clipforge_http_requests_total", "HTTP requests served.", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "clipforge_http_request_duration_seconds",
    "HTTP request latency.",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)
CACHE_REQUESTS = Counter(
    "clipforge_cache_requests_total", "Cache lookups by result.", ["namespace", "result"]
)
CACHE_ERRORS = Counter(
    "clipforge_cache_errors_total", "Redis errors that degraded a call to the database.", ["op"]
)
RATE_LIMITED = Counter("clipforge_rate_limited_total", "Requests refused by the rate limiter.")
BREAKER_STATE = Gauge(
    "clipforge_circuit_breaker_open",
    "1 while a circuit breaker is open.",
    ["breaker"],
    multiprocess_mode="max",
)

QUEUE_DEPTH = Gauge(
    "clipforge_queue_depth",
    "Jobs by kind and state.",
    ["kind", "state"],
    multiprocess_mode="mostrecent",
)
QUEUE_OLDEST_AGE = Gauge(
    "clipforge_queue_oldest_job_age_seconds",
    "How long the oldest runnable queued job has waited, by kind.",
    ["kind"],
    multiprocess_mode="mostrecent",
)
JOBS_CLAIMED = Counter("clipforge_jobs_claimed_total", "Jobs leased by workers.", ["kind"])
JOBS_FINISHED = Counter(
    "clipforge_jobs_finished_total", "Job attempts by outcome.", ["kind", "outcome"]
)
JOB_DURATION = Histogram(
    "clipforge_job_duration_seconds", "Job attempt wall time.", ["kind"], buckets=_JOB_BUCKETS
)
VIDEO_SECONDS = Counter(
    "clipforge_video_seconds_processed_total",
    "Seconds of source video that completed each pipeline stage (minutes of video per minute).",
    ["stage"],
)
MODEL_LOADS = Counter(
    "clipforge_model_loads_total",
    "Model weights loaded by pipeline stage actors (reported to the driver; once per actor).",
    ["model"],
)
STAGE_ROWS = Counter(
    "clipforge_stage_rows_total", "Rows (videos or exports) sent to stage actors.", ["stage"]
)
STAGE_ACTORS = Gauge(
    "clipforge_stage_actors",
    "Actors in a stage's elastic pool of this worker (loading ones included).",
    ["stage"],
)
STAGE_WORK_PER_ACTOR = Gauge(
    "clipforge_stage_work_per_actor",
    "Jobs of a stage runnable now or running on this worker, per actor of its pool.",
    ["stage"],
)
OBJECT_CACHE = Counter(
    "clipforge_object_cache_requests_total",
    "Node-local object cache lookups by stage actors, by result (hit / miss).",
    ["result"],
)
JOBS_WAITING_DEPENDENCY = Counter(
    "clipforge_jobs_waiting_dependency_total",
    "Job attempts delayed, without spending an attempt, because a dependency was down.",
    ["kind", "dependency"],
)
QUEUE_WAITING_DEPENDENCY = Gauge(
    "clipforge_jobs_waiting_dependency_queued",
    "Queued jobs currently waiting for a dependency to come back, by kind and dependency.",
    ["kind", "dependency"],
    multiprocess_mode="mostrecent",
)
DEPENDENCY_UP = Gauge(
    "clipforge_dependency_up",
    "1 when the last readiness check reached the dependency (0: down, degraded service).",
    ["dependency"],
    multiprocess_mode="mostrecent",
)
DISK_FREE_BYTES = Gauge(
    "clipforge_disk_free_bytes",
    "Free bytes on each folder a worker or API process writes media to (see DISK_FREE_FLOOR_MB).",
    ["path"],
    multiprocess_mode="mostrecent",
)
JOBS_WOKEN = Counter(
    "clipforge_jobs_woken_total",
    "Delayed jobs made runnable early because a probe saw their dependency back.",
    ["dependency"],
)
UPLOADS_SWEPT = Counter(
    "clipforge_orphan_uploads_removed_total",
    "Upload objects removed because no video row claimed them within the grace period.",
)
CACHE_INVALIDATIONS_PENDING = Gauge(
    "clipforge_cache_invalidations_pending",
    "Cache invalidations that failed (Redis unreachable) and are queued for retry.",
    multiprocess_mode="livesum",
)
CLAIM_BATCH = Histogram(
    "clipforge_claim_batch_size", "Jobs per claim.", buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200)
)


def render() -> bytes:
    """The Prometheus exposition of this process, or of all of the instance's processes."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()


def ray_counter(name: str, description: str, tag_keys: Sequence[str] = ()) -> Any:
    """A `ray.util.metrics.Counter`, for code that runs inside a Ray worker or actor."""
    from ray.util import metrics as ray_metrics  # only importable where Ray is installed/used

    return ray_metrics.Counter(name, description=description, tag_keys=tuple(tag_keys))


def ray_histogram(
    name: str, description: str, boundaries: Sequence[float], tag_keys: Sequence[str] = ()
) -> Any:
    """A `ray.util.metrics.Histogram`, for code that runs inside a Ray worker or actor."""
    from ray.util import metrics as ray_metrics

    return ray_metrics.Histogram(
        name, description=description, boundaries=list(boundaries), tag_keys=tuple(tag_keys)
    )
