"""The one factory of the public FastAPI app, used by the Serve ingress and by plain uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from serve_apps.api.deps import ApiDeps
from serve_apps.api.errors import install_error_handlers
from serve_apps.api.middleware import BodyLimits, Observer, RequestMiddleware
from serve_apps.api.routers import health, jobs, models, results, videos

API_VERSION = "1.0.0"


def create_app(
    deps: ApiDeps, *, observers: tuple[Observer, ...] = (), close_deps: bool = False
) -> FastAPI:
    """Build the API around opened `deps`.

    `observers` receive (route, method, status, seconds) per request, besides the Prometheus
    metrics (the Serve ingress passes Ray metrics there). With `close_deps` the app closes the
    connections when it shuts down (standalone mode, where the app owns them).
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if close_deps:
            deps.close()

    app = FastAPI(
        title="ClipForge API",
        version=API_VERSION,
        summary="Long videos in, captioned highlight clips out.",
        lifespan=lifespan,
    )
    app.state.deps = deps
    install_error_handlers(app)
    settings = deps.settings
    limits = BodyLimits(
        default=settings.api_max_body_bytes,
        direct_upload=settings.api_max_direct_upload_bytes,
        model_upload=settings.api_max_model_upload_bytes,
    )
    app.add_middleware(RequestMiddleware, limits=limits, observers=observers)
    for module in (health, videos, results, jobs, models):
        app.include_router(module.router)
    return app
