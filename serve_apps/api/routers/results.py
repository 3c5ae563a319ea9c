"""Transcripts, clips and exports of a video."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from serve_apps.api.deps import ApiRoute, AuthKey, Deps, IdempotencyKey
from serve_apps.api.idempotency import fingerprint, run_idempotent
from serve_apps.api.protocol import (
    CURSOR_PATTERN,
    ClipPage,
    CreateExportRequest,
    ExportCreated,
    ExportOut,
    ExportPage,
    TranscriptFormat,
    TranscriptOut,
)
from serve_apps.api.routers import ERRORS
from serve_apps.api.services import results

router = APIRouter(prefix="/v1", tags=["results"], responses=ERRORS, route_class=ApiRoute)

Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
PageCursor = Annotated[
    str | None, Query(max_length=200, pattern=CURSOR_PATTERN, description="From `next_cursor`.")
]


@router.get(
    "/videos/{video_id}/transcript",
    response_model=TranscriptOut,
    responses={200: {"content": {"application/x-subrip": {}, "text/vtt": {}}}},
)
def get_transcript(
    video_id: uuid.UUID,
    key: AuthKey,
    deps: Deps,
    format: Annotated[TranscriptFormat, Query(description="json, srt or vtt.")] = "json",
) -> TranscriptOut | PlainTextResponse:
    """The word-timed transcript, or captions for the whole video as SRT / WebVTT."""
    return results.transcript(deps, key, video_id, format)


@router.get("/videos/{video_id}/clips", response_model=ClipPage)
def list_clips(
    video_id: uuid.UUID, key: AuthKey, deps: Deps, limit: Limit = 20, cursor: PageCursor = None
) -> ClipPage:
    """The video's highlight clips."""
    return results.clips_page(deps, key, video_id, limit=limit, cursor=cursor)


@router.post("/clips/{clip_id}/exports", status_code=202, response_model=ExportCreated)
def create_export(
    clip_id: uuid.UUID,
    body: CreateExportRequest,
    request: Request,
    key: AuthKey,
    deps: Deps,
    idem: IdempotencyKey,
) -> JSONResponse:
    """Render the clip (aspect ratio, burned captions); poll the export for its URL."""
    return run_idempotent(
        deps.pool,
        api_key_id=key.id,
        key=idem,
        request_hash=fingerprint(f"exports:{clip_id}", body),
        status_code=202,
        action=lambda conn: results.request_export(
            deps, conn, key, clip_id, body, base_url=str(request.base_url)
        ),
    )


@router.get("/clips/{clip_id}/exports", response_model=ExportPage)
def list_exports(
    clip_id: uuid.UUID,
    request: Request,
    key: AuthKey,
    deps: Deps,
    limit: Limit = 20,
    cursor: PageCursor = None,
) -> ExportPage:
    """The clip's exports, oldest first."""
    return results.exports_page(
        deps, key, clip_id, limit=limit, cursor=cursor, base_url=str(request.base_url)
    )


@router.get("/exports/{export_id}", response_model=ExportOut)
def get_export(export_id: uuid.UUID, request: Request, key: AuthKey, deps: Deps) -> ExportOut:
    """One export; `url`, `thumbnail_url` and `caption_urls` are set once it is ready."""
    return results.export(deps, key, export_id, base_url=str(request.base_url))
