"""`/v1/videos`: create, upload, list, get, delete."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from serve_apps.api.deps import ApiRoute, AuthKey, Deps, IdempotencyKey
from serve_apps.api.protocol import (
    CURSOR_PATTERN,
    NO_CONTROL_CHARS,
    CreateVideoRequest,
    ErrorResponse,
    VideoCreated,
    VideoOut,
    VideoPage,
    VideoStatus,
)
from serve_apps.api.routers import ERRORS
from serve_apps.api.services import videos
from serve_apps.api.uploads import UploadSlots, check_media_type, spool_upload, upload_folder

router = APIRouter(prefix="/v1/videos", tags=["videos"], responses=ERRORS, route_class=ApiRoute)

_RAW_BODY = {
    "requestBody": {
        "required": True,
        "content": {"video/*": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "",
    status_code=202,
    response_model=VideoCreated,
    responses={201: {"model": VideoCreated, "description": "Presigned upload announced."}},
)
def create_video(
    body: CreateVideoRequest, key: AuthKey, deps: Deps, idem: IdempotencyKey
) -> JSONResponse:
    """Import from a public URL (202, import queued), or get a presigned upload URL (201)."""
    return videos.create(deps, key, body, idem)


@router.post(
    "/upload",
    status_code=202,
    response_model=VideoCreated,
    openapi_extra=_RAW_BODY,
    responses={415: {"model": ErrorResponse, "description": "Not an audio or video file."}},
)
async def upload_video(
    request: Request,
    key: AuthKey,
    deps: Deps,
    idem: IdempotencyKey,
    title: Annotated[
        str | None, Query(max_length=300, pattern=NO_CONTROL_CHARS, description="Optional label.")
    ] = None,
) -> JSONResponse:
    """Upload a small file as the raw body (size limit: API_MAX_DIRECT_UPLOAD_BYTES; at most
    API_MAX_CONCURRENT_UPLOADS at once per API process, else 503 with Retry-After)."""
    check_media_type(request.headers.get("content-type"))
    slots: UploadSlots = request.app.state.upload_slots
    with slots.hold(), upload_folder() as folder:
        upload = await spool_upload(
            request.stream(), folder / "upload", prefix=videos.upload_fingerprint_prefix(title)
        )
        return await run_in_threadpool(videos.upload_direct, deps, key, upload, title, idem)


@router.post("/{video_id}/uploaded", status_code=202, response_model=VideoCreated)
def complete_upload(
    video_id: uuid.UUID, key: AuthKey, deps: Deps, idem: IdempotencyKey
) -> JSONResponse:
    """Tell the API the presigned upload finished; queues the import."""
    return videos.complete_upload(deps, key, video_id, idem)


@router.get("", response_model=VideoPage)
def list_videos(
    key: AuthKey,
    deps: Deps,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=200, pattern=CURSOR_PATTERN, description="From `next_cursor`.")
    ] = None,
    status: Annotated[VideoStatus | None, Query(description="Only videos in this state.")] = None,
) -> VideoPage:
    """The key's videos, newest first."""
    return videos.page(deps, key, limit=limit, cursor=cursor, status=status)


@router.get("/{video_id}", response_model=VideoOut)
async def get_video(video_id: uuid.UUID, key: AuthKey, deps: Deps) -> VideoOut:
    """One video (cached for up to 5 minutes, invalidated on change)."""
    # A cache hit was read with the rate-limit check: answer on the loop, no thread hop.
    cached = videos.get_prefetched(deps, key, video_id)
    if cached is not None:
        return cached
    return await run_in_threadpool(videos.get, deps, key, video_id)


@router.delete("/{video_id}", status_code=204, response_class=Response)
def delete_video(video_id: uuid.UUID, key: AuthKey, deps: Deps) -> Response:
    """Delete the video, its results and its stored media."""
    videos.delete(deps, key, video_id)
    return Response(status_code=204)
