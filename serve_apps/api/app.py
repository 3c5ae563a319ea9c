"""The one factory of the public FastAPI app, used by the Serve ingress and by plain uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from clipforge.fetch import parse_networks
from serve_apps.api.deps import ApiDeps, check_api_key
from serve_apps.api.docs import install_docs
from serve_apps.api.errors import install_error_handlers
from serve_apps.api.middleware import BodyLimits, Observer, RequestMiddleware
from serve_apps.api.routers import clips, health, jobs, media, models, results, videos
from serve_apps.api.server import HeaderLimits
from serve_apps.api.studio import install_studio
from serve_apps.api.tracing import TracingMiddleware
from serve_apps.api.uploads import UploadSlots

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
        await deps.aio.aclose()  # this loop's asyncio clients; the loop ends with the app
        if close_deps:
            deps.close()

    settings = deps.settings
    app = FastAPI(
        title="ClipForge API",
        version=API_VERSION,
        summary="Long videos in, captioned highlight clips out.",
        lifespan=lifespan,
        # FastAPI's own pages load their assets from a CDN; install_docs serves local copies.
        docs_url=None,
        redoc_url=None,
        # API_DOCS_ENABLED: the schema and pages are public, so off in production by default.
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        # Starlette would answer `/v1/videos/` with a redirect whose Location it builds from
        # the Host header (any name a client sends); a path with a trailing slash is a 404.
        redirect_slashes=False,
    )
    app.state.deps = deps
    app.state.upload_slots = UploadSlots(settings.api_max_concurrent_uploads)

    async def authenticate(request: Request) -> None:
        if request.url.path.startswith("/v1/"):  # every /v1 route takes an API key
            await check_api_key(deps, request)

    install_error_handlers(app, authenticate=authenticate)
    limits = BodyLimits(
        default=settings.api_max_body_bytes,
        direct_upload=settings.api_max_direct_upload_bytes,
        model_upload=settings.api_max_model_upload_bytes,
        timeout_s=settings.api_body_timeout_s,
    )
    app.add_middleware(
        RequestMiddleware,
        limits=limits,
        header_limits=HeaderLimits.from_settings(settings),
        observers=observers,
        trusted_proxies=parse_networks(settings.api_trusted_proxy_cidrs),
    )
    # Outside RequestMiddleware: its access log line is written inside the request's span.
    app.add_middleware(TracingMiddleware)
    # Outermost: the client address of a request that came through a trusted proxy (the
    # balancer's X-Forwarded-For) is what the failed-authentication limiter and the logs see.
    # Here rather than in uvicorn so `clipforge api` and the Serve ingress (whose proxy trusts
    # only loopback) follow the one setting, API_TRUSTED_PROXY_CIDRS.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.api_trusted_proxy_cidrs)
    for module in (health, videos, results, clips, jobs, models, media):
        app.include_router(module.router)
    if settings.docs_enabled:
        install_docs(app)
    install_studio(app)  # the editing page: static files, and media only for a valid key
    return app
