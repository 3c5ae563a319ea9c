"""`/v1/models/*`: online inference on the Serve model deployments (batched, autoscaled)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from serve_apps.api.deps import AuthKey, Deps, Models
from serve_apps.api.protocol import TranscriptOut
from serve_apps.api.protocol_models import (
    CaptionsRequest,
    CaptionsResponse,
    HighlightsRequest,
    HighlightsResponse,
)
from serve_apps.api.routers import ERRORS
from serve_apps.api.services.results import transcript_out
from serve_apps.api.uploads import check_media_type, decode_upload

router = APIRouter(prefix="/v1/models", tags=["models"], responses=ERRORS)

_MEDIA_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "audio/*": {"schema": {"type": "string", "format": "binary"}},
            "video/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post("/asr", response_model=TranscriptOut, openapi_extra=_MEDIA_BODY)
async def transcribe(
    request: Request,
    key: AuthKey,
    deps: Deps,
    models: Models,
    language: Annotated[
        str | None, Query(pattern=r"^[a-z]{2}$", description="ISO 639-1; detected if omitted.")
    ] = None,
) -> TranscriptOut:
    """Transcribe an audio or video file sent as the raw body (at most
    API_MAX_MODEL_UPLOAD_BYTES, default 25 MiB, and API_MAX_ASR_AUDIO_S seconds, default 120)."""
    check_media_type(request.headers.get("content-type"))
    body = await request.body()
    limit = deps.settings.api_max_asr_audio_s
    audio = await run_in_threadpool(decode_upload, body, max_seconds=limit)
    return transcript_out(await models.transcribe(audio, language=language))


@router.post("/highlights", response_model=HighlightsResponse)
async def score_highlights(
    body: HighlightsRequest, key: AuthKey, models: Models
) -> HighlightsResponse:
    """Score text windows (with optional timings) as highlight candidates."""
    return await models.highlights(body)


@router.post("/captions", response_model=CaptionsResponse)
async def make_captions(body: CaptionsRequest, key: AuthKey, models: Models) -> CaptionsResponse:
    """Caption cues (and SRT/VTT text) from timed words, with a suggested title and hook."""
    return await models.captions(body)
