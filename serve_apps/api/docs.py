"""`/docs` (Swagger UI), `/redoc` and `/`, served without any CDN.

FastAPI's default doc pages load Swagger UI, ReDoc and Google Fonts from public CDNs, so they
are blank on a machine without internet (the usual case for a self-hosted deployment). The
same FastAPI page builders are used here, pointed at the copies of the assets that the pinned
`fastapi-offline` package ships (Swagger UI bundle and CSS, ReDoc standalone, favicon), which
this app mounts as static files. Only the assets come from that package; the app stays a
plain `FastAPI`. ReDoc's bundle hard-codes one remote image (the Redocly logo in its side
menu), so it is served from memory with that URL replaced by an inline blank SVG: offline,
the page must not reach out at all.

Every URL is prefixed with the request's `root_path`, so the pages also work when the app is
served under a route prefix (Serve) or behind a proxy that strips one.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
STATIC_URL = "/static/docs"
REDOC_JS_URL = "/static/redoc/redoc.standalone.js"
ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"

_REDOCLY_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
# Percent-encoded, without quotes: it replaces the inside of a JS string literal.
_BLANK_SVG = b"data:image/svg+xml,%3Csvg%20xmlns=%27http://www.w3.org/2000/svg%27/%3E"

# No validator badge: Swagger UI would otherwise send the spec to validator.swagger.io.
_SWAGGER_PARAMETERS = {"validatorUrl": None}


class ApiIndex(BaseModel):
    """What `GET /` answers: where the documentation and the probes are."""

    name: str
    version: str
    docs: str
    redoc: str
    openapi: str
    health: str


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def offline_redoc_bundle() -> bytes:
    """ReDoc's standalone bundle with its one remote URL (the Redocly logo) made inline."""
    bundle = (ASSETS_DIR / "redoc.standalone.js").read_bytes()
    return bundle.replace(_REDOCLY_LOGO, _BLANK_SVG)


def install_docs(app: FastAPI) -> None:
    """Mount the bundled assets and add `/`, `/docs`, `/docs/oauth2-redirect` and `/redoc`.

    `app` must be created with `docs_url=None, redoc_url=None` so FastAPI's CDN pages do not
    shadow these routes.
    """
    if not (ASSETS_DIR / "swagger-ui-bundle.js").is_file():  # a broken install: fail at start
        raise RuntimeError(f"Swagger UI assets missing under {ASSETS_DIR}")
    app.mount(STATIC_URL, StaticFiles(directory=ASSETS_DIR), name="docs-static")
    redoc_bundle = offline_redoc_bundle()  # read once: ~1 MB, the same for every request
    router = APIRouter(include_in_schema=False)
    openapi_url = app.openapi_url or "/openapi.json"

    @router.get("/", response_model=ApiIndex)
    async def index(request: Request) -> ApiIndex:
        root = _root(request)
        return ApiIndex(
            name=app.title,
            version=app.version,
            docs=f"{root}{DOCS_URL}",
            redoc=f"{root}{REDOC_URL}",
            openapi=f"{root}{openapi_url}",
            health=f"{root}/health",
        )

    @router.get(DOCS_URL)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters=_SWAGGER_PARAMETERS,
        )

    @router.get(OAUTH2_REDIRECT_URL)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get(REDOC_URL)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{REDOC_JS_URL}",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )

    @router.get(REDOC_JS_URL)
    async def redoc_js() -> Response:
        return Response(
            redoc_bundle,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.include_router(router)
