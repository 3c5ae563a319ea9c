"""`/health` (no dependencies), `/ready` (db, redis, storage) and `/metrics` (Prometheus)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from clipforge.queue import export_queue_metrics
from serve_apps.api.deps import ApiDeps, Deps
from serve_apps.api.protocol import Health, Readiness

router = APIRouter(tags=["health"])

_CHECK_TIMEOUT_S = 2.0
# Checks run on their own small pool so a hung dependency cannot exhaust the request threads.
_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ready")


@router.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: answers without touching any dependency."""
    return Health(status="ok")


def _db(deps: ApiDeps) -> str:
    with deps.pool.connection(timeout=_CHECK_TIMEOUT_S) as conn:
        conn.execute("SELECT 1")
    return "ok"


def _redis(deps: ApiDeps) -> str:
    if deps.redis is None:
        return "disabled"
    deps.redis.ping()
    return "ok"


def _storage(deps: ApiDeps) -> str:
    deps.store.head("health/ready-probe")
    return "ok"


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(deps: Deps) -> JSONResponse:
    """Readiness: Postgres, Redis and storage each answer within 2 s."""
    futures = {
        name: _checks.submit(fn, deps)
        for name, fn in (("db", _db), ("redis", _redis), ("storage", _storage))
    }
    checks: dict[str, str] = {}
    for name, future in futures.items():
        try:
            checks[name] = future.result(timeout=_CHECK_TIMEOUT_S)
        except FutureTimeout:
            checks[name] = "timeout"
        except Exception as exc:  # any failure of a dependency means "not ready"
            checks[name] = f"error: {type(exc).__name__}"
    ok = all(v in ("ok", "disabled") for v in checks.values())
    body = Readiness(status="ready" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response)
def metrics(deps: Deps) -> Response:
    """Prometheus metrics of this process, with queue depth refreshed from Postgres."""
    try:
        with deps.pool.connection(timeout=_CHECK_TIMEOUT_S) as conn:
            export_queue_metrics(conn)
    except Exception:  # metrics must still be served while the database is down
        pass
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
