"""Read and request results of a video: transcript, clips, exports.

Transcripts (30 min) and a video's clip list (10 min) are cached whole per video; a video has
at most a few dozen clips, so paging the cached list in memory keeps one cache key per video
(one invalidation per write) while still answering with keyset cursors like every other list.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.responses import PlainTextResponse

from clipforge.cache import CLIPS_TTL_S, TRANSCRIPT_TTL_S
from clipforge.db.pool import Conn
from clipforge.db.repo.api_keys import ApiKey
from clipforge.db.repo.clips import StoredClip, get_clip, list_all_clips
from clipforge.db.repo.exports import Export, create_export, get_export, list_exports
from clipforge.db.repo.transcripts import get_transcript
from clipforge.db.repo.videos import get_video
from clipforge.errors import NotFound
from clipforge.pagination import Cursor, check_limit
from clipforge.queue import enqueue
from clipforge.types import Transcript, Word
from models.caption import build_cues
from models.caption_formats import to_srt, to_vtt
from serve_apps.api.deps import ApiDeps
from serve_apps.api.protocol import (
    ClipOut,
    ClipPage,
    CreateExportRequest,
    ExportCreated,
    ExportOut,
    ExportPage,
    ModelRef,
    SegmentOut,
    TranscriptFormat,
    TranscriptOut,
    WordOut,
)
from serve_apps.api.services.media import CAPTION_FORMATS, media_url, sibling_key
from serve_apps.api.services.videos import CLIPS_NS, TRANSCRIPT_NS, owned_cached

EXPORT_JOB = "export"
_TEXT_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt"}


def transcript_out(transcript: Transcript, video_id: uuid.UUID | None = None) -> TranscriptOut:
    """API view of a transcript."""
    return TranscriptOut(
        video_id=video_id,
        language=transcript.language,
        duration_s=transcript.duration,
        text=transcript.text,
        model=ModelRef(name=transcript.model.name, version=transcript.model.version),
        segments=[
            SegmentOut(
                start=s.start,
                end=s.end,
                text=s.text,
                words=[
                    WordOut(
                        start=w.start,
                        end=w.end,
                        text=w.text,
                        probability=w.probability,
                        speaker=w.speaker,
                    )
                    for w in s.words
                ],
            )
            for s in transcript.segments
        ],
    )


def transcript(
    deps: ApiDeps, key: ApiKey, video_id: uuid.UUID, fmt: TranscriptFormat
) -> TranscriptOut | PlainTextResponse:
    """`GET /v1/videos/{id}/transcript?format=json|srt|vtt`."""
    video = owned_cached(deps, key, video_id)

    def load() -> dict[str, Any] | None:
        stored = deps.read(
            key, lambda conn: get_transcript(conn, video_id=video_id), fills_cache=True
        )
        return transcript_out(stored, video_id).model_dump(mode="json") if stored else None

    data = deps.cache.get_or_load(TRANSCRIPT_NS, str(video_id), ttl_s=TRANSCRIPT_TTL_S, loader=load)
    if data is None:
        raise NotFound(f"video {video_id} has no transcript yet (status: {video['status']})")
    out = TranscriptOut.model_validate(data)
    if fmt == "json":
        return out
    words = [Word(w.start, w.end, w.text, w.probability) for s in out.segments for w in s.words]
    cues = build_cues(words, 0.0, max(out.duration_s, words[-1].end if words else 0.0) or 0.01)
    text = to_srt(cues) if fmt == "srt" else to_vtt(cues)
    return PlainTextResponse(text, media_type=_TEXT_TYPES[fmt])


def clips_page(
    deps: ApiDeps, key: ApiKey, video_id: uuid.UUID, *, limit: int, cursor: str | None
) -> ClipPage:
    """`GET /v1/videos/{id}/clips`: oldest first by (created_at, id), keyset-paginated."""
    check_limit(limit)
    position = Cursor.decode(cursor) if cursor else None
    owned_cached(deps, key, video_id)

    def load() -> list[dict[str, Any]]:
        clips = deps.read(
            key, lambda conn: list_all_clips(conn, video_id=video_id), fills_cache=True
        )
        return [c.to_json() for c in clips]

    rows = [
        ClipOut.model_validate(r)
        for r in deps.cache.get_or_load(CLIPS_NS, str(video_id), ttl_s=CLIPS_TTL_S, loader=load)
    ]
    rows.sort(key=lambda c: (c.created_at, c.id))
    if position is not None:
        rows = [c for c in rows if (c.created_at, c.id) > (position.created_at, position.id)]
    items = rows[:limit]
    nxt = Cursor(items[-1].created_at, items[-1].id).encode() if len(rows) > limit else None
    return ClipPage(items=items, next_cursor=nxt)


def owned_clip(conn: Conn, key: ApiKey, clip_id: uuid.UUID) -> StoredClip:
    """The clip if its video belongs to the key; 404 otherwise."""
    clip = get_clip(conn, clip_id=clip_id)
    if clip is None or get_video(conn, video_id=clip.video_id, owner_key_id=key.id) is None:
        raise NotFound(f"clip {clip_id} not found")
    return clip


def export_out(deps: ApiDeps, export: Export, *, key: ApiKey, base_url: str) -> ExportOut:
    """API view of an export, with download URLs (`services.media`) once it is ready."""
    data = export.to_json() | {"url": None, "thumbnail_url": None, "caption_urls": None}
    if export.status == "ready" and export.object_key:

        def url(object_key: str) -> str:
            return media_url(deps, object_key, tenant=key.id, base_url=base_url)

        data["url"] = url(export.object_key)
        data["thumbnail_url"] = url(export.thumbnail_key) if export.thumbnail_key else None
        # The export stage stores the caption files beside the MP4, under the same stem.
        data["caption_urls"] = {
            ext: url(sibling_key(export.object_key, ext)) for ext in CAPTION_FORMATS
        }
    return ExportOut.model_validate(data)


def request_export(
    deps: ApiDeps,
    conn: Conn,
    key: ApiKey,
    clip_id: uuid.UUID,
    body: CreateExportRequest,
    *,
    base_url: str,
) -> ExportCreated:
    """Queue a render of the key's clip (runs inside the idempotent transaction)."""
    clip = owned_clip(conn, key, clip_id)
    export = create_export(
        conn,
        clip_id=clip.id,
        aspect_ratio=body.aspect_ratio,
        caption_style=body.caption_style,
        layout=body.layout,
    )
    job = enqueue(
        conn,
        deps.queue,
        kind=EXPORT_JOB,
        payload={"export_id": str(export.id)},
        video_id=clip.video_id,
    )
    return ExportCreated(export=export_out(deps, export, key=key, base_url=base_url), job_id=job.id)


def export(deps: ApiDeps, key: ApiKey, export_id: uuid.UUID, *, base_url: str) -> ExportOut:
    """`GET /v1/exports/{id}`."""

    def load(conn: Conn) -> Export | None:
        row = get_export(conn, export_id=export_id)
        try:
            if row is not None:
                owned_clip(conn, key, row.clip_id)
        except NotFound:
            # Another key's export answers exactly like a missing one: naming its clip (or
            # answering differently at all) would confirm that the id exists.
            row = None
        return row

    row = deps.read(key, load)
    if row is None:
        raise NotFound(f"export {export_id} not found")
    return export_out(deps, row, key=key, base_url=base_url)


def exports_page(
    deps: ApiDeps,
    key: ApiKey,
    clip_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
    base_url: str,
) -> ExportPage:
    """`GET /v1/clips/{id}/exports`."""
    position = Cursor.decode(cursor) if cursor else None

    def load(conn: Conn) -> tuple[list[Export], Cursor | None]:
        owned_clip(conn, key, clip_id)
        return list_exports(conn, clip_id=clip_id, limit=limit, cursor=position)

    rows, nxt = deps.read(key, load)
    return ExportPage(
        items=[export_out(deps, e, key=key, base_url=base_url) for e in rows],
        next_cursor=nxt.encode() if nxt else None,
    )
