"""`/v1/clips`: one clip, its bounds and caption corrections, clips made by hand."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serve_apps.api.deps import ApiRoute, AuthKey, Deps, IdempotencyKey
from serve_apps.api.protocol import ClipOut
from serve_apps.api.protocol_clips import (
    ClipWords,
    CreateClipRequest,
    EditClipRequest,
    PutWordsRequest,
)
from serve_apps.api.routers import ERRORS
from serve_apps.api.services import clips

router = APIRouter(prefix="/v1/clips", tags=["clips"], responses=ERRORS, route_class=ApiRoute)


@router.post("", status_code=201, response_model=ClipOut)
def create_clip(
    body: CreateClipRequest, key: AuthKey, deps: Deps, idem: IdempotencyKey
) -> JSONResponse:
    """Make a clip of a chosen span of a ready video (snapped to word edges and silences)."""
    return clips.create(deps, key, body, idem)


@router.get("/{clip_id}", response_model=ClipOut)
def get_clip(clip_id: uuid.UUID, key: AuthKey, deps: Deps) -> ClipOut:
    """One clip."""
    return clips.get(deps, key, clip_id)


@router.patch("/{clip_id}", response_model=ClipOut)
def edit_clip(
    clip_id: uuid.UUID, body: EditClipRequest, key: AuthKey, deps: Deps, idem: IdempotencyKey
) -> JSONResponse:
    """Move the clip's bounds; answers the snapped ones. Later exports render the new span."""
    return clips.edit(deps, key, clip_id, body, idem)


@router.get("/{clip_id}/words", response_model=ClipWords)
def get_clip_words(clip_id: uuid.UUID, key: AuthKey, deps: Deps) -> ClipWords:
    """The clip's words as its captions show them, with what the recogniser heard."""
    return clips.words(deps, key, clip_id)


@router.put("/{clip_id}/words", response_model=ClipWords)
def put_clip_words(
    clip_id: uuid.UUID, body: PutWordsRequest, key: AuthKey, deps: Deps, idem: IdempotencyKey
) -> JSONResponse:
    """Set the clip's caption corrections (timings stay); later exports' captions use them."""
    return clips.put_words(deps, key, clip_id, body, idem)
