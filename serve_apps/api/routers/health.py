"""`/health` (no dependencies), `/ready` (db, redis, storage, disk) and `/metrics` (Prometheus).

Readiness fails (503) only for what the instance cannot serve without: the database. Redis
(cache, rate limit), object storage (uploads, media URLs) and the local disk (under
DISK_FREE_FLOOR_MB free: uploads and local media writes fail) being down degrades some answers
but reads and creates keep working, so those show as `degraded` in the body and as
`clipforge_dependency_up{dependency}` = 0, and the instance stays in the load balancer.
"""

from __future__ import annotations

import hmac
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from clipforge.db.repo.ops import ping as ping_database
from clipforge.diskspace import DiskFloor
from clipforge.errors import NotFound
from clipforge.metrics import DEPENDENCY_UP, render
from clipforge.queue import export_queue_metrics
from clipforge.redis_client import ping
from serve_apps.api.deps import ApiDeps, Deps
from serve_apps.api.errors import Unauthorized
from serve_apps.api.protocol import Health, Readiness

router = APIRouter(tags=["health"])

_CHECK_TIMEOUT_S = 2.0
_QUEUE_REFRESH_S = 5.0
_queue_lock = threading.Lock()
_queue_refreshed_at = float("-inf")
# Dependencies without which the instance cannot serve; the others only degrade it.
_REQUIRED = frozenset({"db"})
# Checks run on their own small pools so a hung dependency cannot exhaust the request threads,
# one pool per dependency so a hung storage or Redis check cannot delay the database check.
_DEPENDENCIES = ("db", "redis", "storage", "disk")
_checks = {
    name: ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"ready-{name}")
    for name in _DEPENDENCIES
}


@router.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: answers without touching any dependency."""
    return Health(status="ok")


def _db(deps: ApiDeps) -> str:
    with deps.pool.connection(timeout=_CHECK_TIMEOUT_S) as conn:
        ping_database(conn)
    return "ok"


def _redis(deps: ApiDeps) -> str:
    if deps.redis is None:
        return "disabled"
    ping(deps.redis)  # every master of a cluster
    return "ok"


def _storage(deps: ApiDeps) -> str:
    deps.store.head("health/ready-probe")
    return "ok"


def _disk(deps: ApiDeps) -> str:
    floor = DiskFloor(deps.settings)
    if floor.floor_bytes <= 0:
        return "disabled"
    result = floor.check()
    return "ok" if result.ok else "low: " + ", ".join(result.low)


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(deps: Deps) -> JSONResponse:
    """Readiness: 200 while Postgres answers within 2 s (`degraded` if Redis or storage do not),
    503 when it does not."""
    futures = {
        name: _checks[name].submit(fn, deps)
        for name, fn in (("db", _db), ("redis", _redis), ("storage", _storage), ("disk", _disk))
    }
    checks: dict[str, str] = {}
    deadline = time.monotonic() + _CHECK_TIMEOUT_S  # all checks share one 2 s budget
    for name, future in futures.items():
        try:
            checks[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            checks[name] = "timeout"
        except Exception as exc:  # any failure of a dependency means "not ready"
            checks[name] = f"error: {type(exc).__name__}"
    failing = sorted(name for name, v in checks.items() if v not in ("ok", "disabled"))
    for name, value in checks.items():
        if value != "disabled":
            DEPENDENCY_UP.labels(dependency=name).set(0 if name in failing else 1)
    ok = not _REQUIRED.intersection(failing)
    degraded = [name for name in failing if name not in _REQUIRED]
    status = "unavailable" if not ok else "degraded" if degraded else "ready"
    body = Readiness(status=status, checks=checks, degraded=degraded)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


def _check_metrics_access(deps: ApiDeps, request: Request) -> None:
    token = deps.settings.metrics_token
    if token is None:
        if deps.settings.environment == "production":
            # Off on the public port unless an operator set METRICS_TOKEN.
            raise NotFound("not found")
        return
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise Unauthorized("metrics need 'Authorization: Bearer <METRICS_TOKEN>'")


def _refresh_queue_metrics(deps: ApiDeps) -> None:
    # At most one queue query per interval per process, however often (or by how many
    # scrapers) /metrics is scraped.
    global _queue_refreshed_at
    with _queue_lock:
        if time.monotonic() - _queue_refreshed_at < _QUEUE_REFRESH_S:
            return
        _queue_refreshed_at = time.monotonic()
    try:
        with deps.pool.connection(timeout=_CHECK_TIMEOUT_S) as conn:
            export_queue_metrics(conn)
    except Exception:  # metrics must still be served while the database is down
        pass


@router.get("/metrics", response_class=Response, include_in_schema=False)
def metrics(deps: Deps, request: Request) -> Response:
    """Prometheus metrics of this instance (all its worker processes), with queue depth
    refreshed from Postgres.

    Needs `Authorization: Bearer <METRICS_TOKEN>` when that is set; off in production without.
    """
    _check_metrics_access(deps, request)
    _refresh_queue_metrics(deps)
    return Response(render(), media_type=CONTENT_TYPE_LATEST)
