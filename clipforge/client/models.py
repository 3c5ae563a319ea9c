"""Response models of the REST API as `clipforge.client` sees them.

The core package must not import `serve_apps`, so these are small client-side copies of the
shapes in `serve_apps/api/protocol.py` (same field names). They ignore fields they do not know,
so a newer server does not break an older client; `tests/clipforge/test_client.py` checks them
against the real API.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

VideoStatus = Literal[
    "pending", "uploading", "importing", "transcribing", "detecting", "ready", "failed", "deleting"
]
ExportStatus = Literal["queued", "rendering", "ready", "failed"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class VideoOut(_Model):
    """A video and what is known about it so far (`error` is set when `status` is `failed`)."""

    id: uuid.UUID
    status: VideoStatus
    source_kind: str
    source_url: str | None = None
    error: str | None = None
    size_bytes: int | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    has_audio: bool | None = None
    metadata: dict[str, Any] = {}
    created_at: datetime
    updated_at: datetime


class UploadTarget(_Model):
    """Where to PUT the file of a presigned upload, and where to confirm it."""

    url: str
    method: str = "PUT"
    expires_in_s: int
    complete_url: str


class VideoCreated(_Model):
    """A created video; `upload` is set for presigned uploads, `job_id` once import is queued."""

    video: VideoOut
    job_id: int | None = None
    upload: UploadTarget | None = None


class VideoPage(_Model):
    """One page of videos, newest first."""

    items: list[VideoOut]
    next_cursor: str | None = None


class WordOut(_Model):
    """A recognised word (seconds from the start of the media)."""

    start: float
    end: float
    text: str
    probability: float = 1.0
    speaker: int | None = None  # speaker turn id (0, 1, ...); None when not computed


class SegmentOut(_Model):
    """A sentence-like span of speech."""

    start: float
    end: float
    text: str
    words: list[WordOut]


class ModelRef(_Model):
    """The model behind an output."""

    name: str
    version: str


class TranscriptOut(_Model):
    """A word-timed transcript."""

    video_id: uuid.UUID | None = None
    language: str
    duration_s: float
    text: str
    model: ModelRef
    segments: list[SegmentOut]


class ClipOut(_Model):
    """A highlight clip of a video."""

    id: uuid.UUID
    video_id: uuid.UUID
    rank: int
    start_s: float
    end_s: float
    score: float
    sub_scores: dict[str, float]
    reason: str
    title: str
    hook: str
    model_name: str
    model_version: str
    created_at: datetime
    edited: bool = False  # a person moved its bounds, corrected its words or made it
    origin: str = "detect"  # who chose the span: detect or user
    original_start_s: float | None = None  # detection's bounds, once a person moved them
    original_end_s: float | None = None


class ClipWordOut(_Model):
    """A word of a clip as its captions show it; `heard` is the transcript's text."""

    index: int  # position in the video's transcript: name it in a correction
    start: float
    end: float
    text: str
    heard: str
    corrected: bool = False
    speaker: int | None = None


class ClipWords(_Model):
    """The words inside a clip's bounds, with its caption corrections."""

    clip_id: uuid.UUID
    video_id: uuid.UUID
    start_s: float
    end_s: float
    words: list[ClipWordOut]


class ClipPage(_Model):
    """One page of a video's clips."""

    items: list[ClipOut]
    next_cursor: str | None = None


class CaptionUrls(_Model):
    """Download URLs of an export's caption files."""

    srt: str
    vtt: str
    ass: str


class ExportOut(_Model):
    """A rendered (or rendering) clip; `url` is set once `status` is `ready`."""

    id: uuid.UUID
    clip_id: uuid.UUID
    aspect_ratio: str
    caption_style: str
    layout: str = "auto"  # who the crop follows: auto, speaker, split or center
    status: ExportStatus
    duration_s: float | None = None
    error: str | None = None
    url: str | None = None
    thumbnail_url: str | None = None
    caption_urls: CaptionUrls | None = None  # srt, vtt, ass
    created_at: datetime
    updated_at: datetime


class ExportCreated(_Model):
    """A queued export and its render job."""

    export: ExportOut
    job_id: int
