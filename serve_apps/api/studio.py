"""Studio: the local editing page of one video, served by the API app itself.

`GET /studio/videos/{id}` is a plain HTML page (script and styles from `static/studio/`, no
CDN) that edits the video's clips through the public `/v1` API with the caller's key: bounds
(snapped by `PATCH /v1/clips/{id}`), caption words (`PUT /v1/clips/{id}/words`), exports. It
is a route of the API rather than a server of its own: whoever edits clips already runs
`clipforge api` and a worker (exports need one), and one origin needs no CORS.

The key never reaches the server in a URL: the page takes it from the URL fragment or a form
and keeps it in `sessionStorage`. An export's files play and download from the URLs the API
hands out with the export (`serve_apps/api/services/media.py`: the CDN, presigned S3, or the
API's signed `/media/` URLs), like any client's. The video's source is the one thing no `/v1`
answer gives a URL for (`/media/` never serves originals), and a `<video>` cannot send an
`Authorization` header, so `/studio/media/videos/{id}/source` reads the same key from a
cookie the page sets for that path only (`SameSite=Strict`) and checks ownership like the
`/v1` routes. Local storage is served from its file (Range requests, so the source seeks); S3
answers with a short presigned redirect, so the API never carries large bytes for S3.
"""

from __future__ import annotations

import html
import mimetypes
import uuid
from pathlib import Path, PurePosixPath

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from clipforge.db.pool import Conn
from clipforge.db.repo.api_keys import ApiKey
from clipforge.db.repo.videos import get_video
from clipforge.errors import NotFound
from clipforge.storage import LocalStore
from clipforge.studio import STUDIO_PATH
from clipforge.types import ASPECT_RATIOS, CAPTION_STYLES, LAYOUTS
from serve_apps.api.deps import ApiDeps, check_api_key
from serve_apps.api.errors import Unauthorized

STATIC_URL = "/studio/static"
MEDIA_URL = "/studio/media"
KEY_COOKIE = "clipforge_studio_key"
ASSETS_DIR = Path(__file__).resolve().parent / "static" / "studio"
# A presigned redirect only has to outlive the browser following it (and a seek or two).
_PRESIGN_S = 300
_LABELS = {
    "aspect": ("Aspect", ASPECT_RATIOS, "9:16"),
    "style": ("Caption style", CAPTION_STYLES, "auto"),
    "layout": ("Layout", LAYOUTS, "auto"),
}
# The page's own assets and the media it names; nothing else (no inline script, no framing).
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data: blob: http: https:; media-src 'self' blob: http: https:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _select(name: str) -> str:
    label, values, default = _LABELS[name]
    options = "".join(
        f'<option value="{html.escape(v)}"{" selected" if v == default else ""}>'
        f"{html.escape(v)}</option>"
        for v in values
    )
    return (
        f'<label for="opt-{name}">{label}</label>'
        f'<select id="opt-{name}" name="{name}">{options}</select>'
    )


def page_html(root: str, video_id: uuid.UUID) -> str:
    """The page's HTML shell; `studio.js` fills it from the API."""
    static = f"{root}{STATIC_URL}"
    selects = "".join(f'<div class="field">{_select(n)}</div>' for n in _LABELS)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ClipForge Studio</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{static}/studio.css">
<script src="{static}/studio.js" defer></script>
</head>
<body data-root="{html.escape(root)}" data-video="{video_id}">
<header><h1>ClipForge Studio</h1><p id="video-title" class="muted"></p></header>
<main>
<form id="key-form" hidden>
  <label for="key-input">API key</label>
  <input id="key-input" type="password" autocomplete="off" required
         aria-describedby="key-help">
  <button type="submit">Open</button>
  <p id="key-help" class="muted">Kept in this tab only (sessionStorage).</p>
</form>
<p id="status" role="status" aria-live="polite"></p>
<section id="editor" hidden aria-label="Editor">
  <video id="source" controls playsinline preload="metadata" aria-label="Source video"></video>
  <div id="timeline" role="group" aria-label="Timeline of the clips">
    <div id="track"></div><div id="playhead" aria-hidden="true"></div>
  </div>
  <div class="row">
    <button type="button" id="play-clip">Play clip</button>
    <button type="button" id="new-clip">New clip at playhead</button>
  </div>
  <h2 id="clips-h">Clips</h2>
  <ul id="clips" aria-labelledby="clips-h"></ul>
  <section id="clip-panel" aria-labelledby="clip-h" hidden>
    <h2 id="clip-h"></h2>
    <p id="bounds" aria-live="polite"></p>
    <div class="nudges" role="group" aria-label="Nudge the bounds by a word">
      <button type="button" data-nudge="start" data-dir="-1">Start earlier</button>
      <button type="button" data-nudge="start" data-dir="1">Start later</button>
      <button type="button" data-nudge="end" data-dir="-1">End earlier</button>
      <button type="button" data-nudge="end" data-dir="1">End later</button>
    </div>
    <h3 id="words-h">Caption words</h3>
    <p class="muted">Edit a word and leave the box (or press Enter) to save it;
      timings stay as heard.</p>
    <div id="words" aria-labelledby="words-h"></div>
    <h3>Export</h3>
    <form id="export-form" class="fields">{selects}
      <button type="submit" id="export-btn">Export</button></form>
    <ul id="exports" aria-label="Exports of this clip"></ul>
  </section>
</section>
</main></body></html>"""


async def _media_key(deps: ApiDeps, request: Request) -> ApiKey:
    raw = request.cookies.get(KEY_COOKIE)
    if not raw:
        raise Unauthorized("open the studio page first: it hands this route the API key")
    return await check_api_key(deps, request, raw_key=raw)


def _serve(deps: ApiDeps, key: str, *, filename: str) -> Response:
    store = deps.store
    if isinstance(store, LocalStore):
        path = store.path_of(key)
        if path is None:
            raise NotFound("file not found")
        media_type = mimetypes.guess_type(filename)[0]
        return FileResponse(
            path,
            media_type=media_type or "application/octet-stream",
            filename=filename,
            content_disposition_type="inline",
            headers={"Cache-Control": "private, no-cache"},
        )
    return RedirectResponse(store.presign_get(key, expires_s=_PRESIGN_S), status_code=307)


def install_studio(app: FastAPI) -> None:
    """Mount the page, its assets and its media routes on `app`."""
    if not (ASSETS_DIR / "studio.js").is_file():  # a broken install: fail at start
        raise RuntimeError(f"studio assets missing under {ASSETS_DIR}")
    app.mount(STATIC_URL, StaticFiles(directory=ASSETS_DIR), name="studio-static")
    router = APIRouter(include_in_schema=False)

    @router.get(STUDIO_PATH)
    async def page(video_id: uuid.UUID, request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return HTMLResponse(
            page_html(root, video_id),
            headers={"Content-Security-Policy": _CSP, "Referrer-Policy": "no-referrer"},
        )

    @router.get(MEDIA_URL + "/videos/{video_id}/source")
    async def source(video_id: uuid.UUID, request: Request) -> Response:
        deps: ApiDeps = request.app.state.deps
        key = await _media_key(deps, request)

        def load(conn: Conn) -> str | None:
            video = get_video(conn, video_id=video_id, owner_key_id=key.id)
            return video.original_key if video is not None else None

        stored = await run_in_threadpool(deps.read, key, load)
        if stored is None:
            raise NotFound(f"video {video_id} has no stored source")
        name = f"source{PurePosixPath(stored).suffix}"
        return await run_in_threadpool(_serve, deps, stored, filename=name)

    app.include_router(router)
