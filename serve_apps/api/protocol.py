"""Request and response models of API v1 (videos, results, jobs, webhooks, errors).

Every field has a description (it is the OpenAPI documentation); enums are `Literal` aliases;
cross-field rules live in `model_validator`s. Requests forbid unknown fields so a typo in a
client is a 422, not a silently ignored option. Model endpoint schemas are in `protocol_models`.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from clipforge.types import AspectRatio, CaptionStyle, Layout

VideoStatus = Literal[
    "pending", "uploading", "importing", "transcribing", "detecting", "ready", "failed", "deleting"
]
JobState = Literal["queued", "running", "succeeded", "failed", "dead"]
TranscriptFormat = Literal["json", "srt", "vtt"]
WebhookEvent = Literal["video.ready", "video.failed"]

MAX_URL_CHARS = 2048

# Every text a client sends (body fields, query parameters, headers) is free of control
# characters: Postgres refuses NUL in text and jsonb (a 500 otherwise), resolvers cut host names
# at it (an SSRF bypass), and no label or URL needs one. Checked at the protocol layer, so the
# rule is in the OpenAPI schema and a violation is a plain 422 before any handler runs.
NO_CONTROL_CHARS = r"^[^\x00-\x1f\x7f-\x9f]*$"
# Free text that may span lines (model endpoint inputs): tab and newlines allowed, nothing else.
NO_CONTROL_CHARS_MULTILINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
SafeStr = Annotated[str, StringConstraints(pattern=NO_CONTROL_CHARS)]
SafeText = Annotated[str, StringConstraints(pattern=NO_CONTROL_CHARS_MULTILINE)]
# Keyset cursors are URL-safe base64 (`clipforge.pagination`).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"


# Unknown members of a request object reported one by one; more are refused as one error.
_MAX_UNKNOWN_MEMBERS = 20


class _Request(BaseModel):
    # strict: "123" is not a size and "true" is not a boolean; clients send JSON types.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_members(cls, data: Any) -> Any:
        # extra="forbid" reports unknown keys one by one: 90,000 of them cost seconds of CPU
        # to list (and the answer is capped at 20 details anyway). Past a few, one error.
        if isinstance(data, dict) and len(data) > len(cls.model_fields) + _MAX_UNKNOWN_MEMBERS:
            unknown = [
                str(k)[:40] for k in itertools.islice(data, 100) if k not in cls.model_fields
            ]
            raise ValueError(
                f"object has {len(data)} members; {cls.__name__} knows {len(cls.model_fields)} "
                f"(unknown: {', '.join(unknown[:5])}, ...)"
            )
        return data


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str = Field(description="Stable machine-readable error code, e.g. `not_found`.")
    message: str = Field(description="Human-readable explanation.")
    request_id: str | None = Field(default=None, description="Id of the request, for support.")
    details: list[Any] | None = Field(
        default=None, description="Per-field validation problems, when the request was invalid."
    )


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: ErrorDetail = Field(description="The error.")


class UploadSpec(_Request):
    """A direct-to-storage upload the client will make with a presigned URL."""

    size_bytes: int = Field(gt=0, description="Size of the file the client will PUT, in bytes.")
    content_type: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^(video|audio)/[A-Za-z0-9.+-]+$",
        description="Media type of the file (informational; the import stage sniffs the bytes).",
    )


class CreateVideoRequest(_Request):
    """Create a video from a public URL or announce a presigned upload (exactly one of them)."""

    source_url: SafeStr | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_URL_CHARS,
        description="Public http(s) URL of the video; private and loopback hosts are refused.",
    )
    upload: UploadSpec | None = Field(
        default=None, description="Ask for a presigned PUT URL instead of giving a source URL."
    )
    title: SafeStr | None = Field(
        default=None, max_length=300, description="Optional label stored with the video."
    )

    @model_validator(mode="after")
    def _one_source(self) -> CreateVideoRequest:
        if (self.source_url is None) == (self.upload is None):
            raise ValueError("give exactly one of source_url or upload")
        return self


class VideoOut(BaseModel):
    """A video and what is known about it so far."""

    id: uuid.UUID = Field(description="Video id.")
    status: VideoStatus = Field(description="Processing state; `ready` when clips exist.")
    source_kind: Literal["url", "upload", "file"] = Field(description="How the video arrived.")
    source_url: str | None = Field(description="The source URL, for URL imports.")
    error: str | None = Field(description="Why processing failed, when `status` is `failed`.")
    size_bytes: int | None = Field(description="Size of the original, once imported.")
    duration_s: float | None = Field(description="Duration in seconds, once probed.")
    width: int | None = Field(description="Frame width in pixels, once probed.")
    height: int | None = Field(description="Frame height in pixels, once probed.")
    fps: float | None = Field(description="Frame rate, once probed.")
    has_audio: bool | None = Field(description="Whether the video has an audio stream.")
    metadata: dict[str, Any] = Field(description="Client label and import facts.")
    created_at: datetime = Field(description="Creation time.")
    updated_at: datetime = Field(description="Last change.")


class UploadTarget(BaseModel):
    """Where and how to upload the file."""

    url: str = Field(description="Presigned URL; PUT the file bytes to it.")
    method: Literal["PUT"] = Field(default="PUT", description="HTTP method to use.")
    expires_in_s: int = Field(description="Seconds the URL stays valid.")
    complete_url: str = Field(description="POST here (no body) after the upload finished.")


class VideoCreated(BaseModel):
    """A newly created video."""

    video: VideoOut = Field(description="The video row.")
    job_id: int | None = Field(description="The import job, once one is queued.")
    upload: UploadTarget | None = Field(
        default=None, description="For presigned uploads: where to PUT the file."
    )


class Page(BaseModel):
    """Common shape of list answers."""

    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class VideoPage(Page):
    """A page of videos, newest first."""

    items: list[VideoOut] = Field(description="The videos.")


class WordOut(BaseModel):
    """A recognised word."""

    start: float = Field(description="Start in seconds from the start of the media.")
    end: float = Field(description="End in seconds.")
    text: str = Field(description="The word.")
    probability: float = Field(description="Recogniser confidence, 0..1.")
    speaker: int | None = Field(
        None,
        description="Who says it: 0, 1, ... in order of first appearance (speaker turns); "
        "null when turns were not computed.",
    )


class SegmentOut(BaseModel):
    """A sentence-like span of speech."""

    start: float = Field(description="Start in seconds.")
    end: float = Field(description="End in seconds.")
    text: str = Field(description="Text of the segment.")
    words: list[WordOut] = Field(description="Its words with timings.")


class ModelRef(BaseModel):
    """The model that produced an output."""

    name: str = Field(description="Model name, e.g. `whisper-tiny.en`.")
    version: str = Field(description="Release and weights-hash prefix.")


class TranscriptOut(BaseModel):
    """A word-timed transcript."""

    video_id: uuid.UUID | None = Field(default=None, description="The video, for stored ones.")
    language: str = Field(description="ISO 639-1 language code.")
    duration_s: float = Field(description="Audio duration in seconds.")
    text: str = Field(description="Full text.")
    model: ModelRef = Field(description="ASR model.")
    segments: list[SegmentOut] = Field(description="Segments in time order.")


class ClipOut(BaseModel):
    """A highlight clip of a video."""

    id: uuid.UUID = Field(description="Clip id.")
    video_id: uuid.UUID = Field(description="Its video.")
    rank: int = Field(description="1 for the best clip.")
    start_s: float = Field(description="Start in seconds.")
    end_s: float = Field(description="End in seconds.")
    score: float = Field(description="Highlight score 0..100.")
    sub_scores: dict[str, float] = Field(description="Named sub-scores 0..1 behind the score.")
    reason: str = Field(description="Why it scored as it did.")
    title: str = Field(description="Suggested title.")
    hook: str = Field(description="Suggested opening line.")
    model_name: str = Field(description="Scorer model name.")
    model_version: str = Field(description="Scorer model version (`user` for made clips).")
    created_at: datetime = Field(description="When detection (or a person) made it.")
    # Defaults: clip lists cached before clip edits existed lack these fields.
    edited: bool = Field(
        default=False,
        description="A person moved its bounds, corrected its words or made it; detection "
        "re-runs keep edited clips.",
    )
    origin: Literal["detect", "user"] = Field(
        default="detect", description="Who chose the span: detection or a person."
    )
    original_start_s: float | None = Field(
        default=None, description="Detection's start, once a person moved the bounds."
    )
    original_end_s: float | None = Field(
        default=None, description="Detection's end, once a person moved the bounds."
    )


class ClipPage(Page):
    """A page of clips, in creation order."""

    items: list[ClipOut] = Field(description="The clips.")


class CreateExportRequest(_Request):
    """Render a clip."""

    aspect_ratio: AspectRatio = Field(default="9:16", description="Output frame shape.")
    caption_style: CaptionStyle = Field(default="auto", description="Burned caption look.")
    layout: Layout = Field(
        default="auto",
        description="Who the crop follows: `auto` (the active speaker; two stacked crops when "
        "two people alternate quickly), `speaker` (one crop on the active speaker), `split` "
        "(two stacked crops whenever two faces share the shot) or `center` (fixed centre crop). "
        "Without a face the crop follows the motion, then the centre.",
    )


class CaptionUrls(BaseModel):
    """Download URLs of an export's caption files (their cues are the burned captions')."""

    srt: str = Field(description="SubRip (`.srt`).")
    vtt: str = Field(description="WebVTT (`.vtt`).")
    ass: str = Field(description="Advanced SubStation Alpha (`.ass`), with the burned styling.")


class ExportOut(BaseModel):
    """A rendered (or rendering) clip."""

    id: uuid.UUID = Field(description="Export id.")
    clip_id: uuid.UUID = Field(description="The clip.")
    aspect_ratio: AspectRatio = Field(description="Output frame shape.")
    caption_style: str = Field(description="Burned caption look.")
    layout: Layout = Field(description="Who the crop follows (see the export request).")
    status: Literal["queued", "rendering", "ready", "failed"] = Field(description="Render state.")
    duration_s: float | None = Field(description="Duration of the rendered file.")
    error: str | None = Field(description="Why rendering failed.")
    url: str | None = Field(
        description="Download URL of the MP4 when `ready`: the CDN's, a presigned S3 URL, or "
        "(local storage) the API's own signed `/media/` URL; presigned and signed URLs expire "
        "after `S3_PRESIGN_EXPIRY_S`, so fetch the export again for a fresh one."
    )
    thumbnail_url: str | None = Field(description="Download URL of the JPEG poster frame.")
    caption_urls: CaptionUrls | None = Field(
        default=None, description="Download URLs of the caption files when `ready`."
    )
    created_at: datetime = Field(description="Creation time.")
    updated_at: datetime = Field(description="Last change.")


class ExportCreated(BaseModel):
    """A queued export."""

    export: ExportOut = Field(description="The export row.")
    job_id: int = Field(description="The render job.")


class ExportPage(Page):
    """A page of a clip's exports."""

    items: list[ExportOut] = Field(description="The exports.")


class JobOut(BaseModel):
    """A queue job (import, export, ...) of one of the key's videos."""

    id: int = Field(description="Job id.")
    kind: str = Field(description="What it runs, e.g. `import`.")
    state: JobState = Field(description="Queue state; `dead` after its retries ran out.")
    video_id: uuid.UUID | None = Field(description="The video it works on.")
    attempts: int = Field(description="Attempts started so far.")
    max_attempts: int = Field(description="Attempts before it goes `dead`.")
    last_error: str | None = Field(description="Error of the latest failed attempt.")
    run_after: datetime = Field(description="Earliest time of the next attempt.")
    created_at: datetime = Field(description="Enqueue time.")
    finished_at: datetime | None = Field(description="When it succeeded or failed for good.")


class CreateWebhookRequest(_Request):
    """Register a receiver for video events."""

    url: SafeStr = Field(
        min_length=1, max_length=MAX_URL_CHARS, description="Public http(s) receiver URL."
    )
    events: list[WebhookEvent] = Field(
        min_length=1, max_length=10, description="Events to receive."
    )


class WebhookOut(BaseModel):
    """A registered receiver."""

    id: uuid.UUID = Field(description="Webhook id.")
    url: str = Field(description="Receiver URL.")
    events: list[str] = Field(description="Subscribed events.")
    created_at: datetime = Field(description="Creation time.")
    secret: str | None = Field(
        default=None, description="HMAC-SHA256 signing secret; returned only at creation."
    )


class WebhookPage(Page):
    """A page of webhooks."""

    items: list[WebhookOut] = Field(description="The webhooks.")


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"] = Field(description="Always `ok` while the process serves requests.")


class Readiness(BaseModel):
    """Readiness and the state of each dependency."""

    status: Literal["ready", "degraded", "unavailable"] = Field(
        description="`ready` when all checks pass; `degraded` when only optional dependencies"
        " (Redis, storage, disk) fail; `unavailable` (503) when the database does."
    )
    checks: dict[str, str] = Field(description="`ok`, `disabled`, or the failure per dependency.")
    degraded: list[str] = Field(
        default_factory=list, description="Optional dependencies that are down right now."
    )
