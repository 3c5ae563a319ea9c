"""Clip edits: move a clip's bounds, correct its caption words, make a clip of a chosen span.

Bounds a person asks for are snapped with detection's own rules (`models.select.snap_span`),
so an edited clip starts and ends between words, in a silence where one is near. Corrections
are an overlay keyed by transcript word index (`clipforge.clip_edits`); the transcript is never
changed. Every write runs in one transaction under the request's Idempotency-Key and drops the
video's cached clip list once committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from clipforge.clip_edits import span_indices
from clipforge.db.pool import Conn
from clipforge.db.repo.api_keys import ApiKey
from clipforge.db.repo.clip_words import get_word_edits, replace_word_edits
from clipforge.db.repo.clips import (
    StoredClip,
    create_user_clip,
    lock_clip,
    mark_edited,
    set_clip_bounds,
)
from clipforge.db.repo.transcripts import get_transcript
from clipforge.db.repo.videos import Video, get_video
from clipforge.errors import Conflict, NotFound, ValidationFailed
from clipforge.types import Transcript, Word
from serve_apps.api.deps import ApiDeps
from serve_apps.api.idempotency import fingerprint, run_idempotent
from serve_apps.api.protocol import ClipOut
from serve_apps.api.protocol_clips import (
    MAX_CLIP_S,
    ClipWordOut,
    ClipWords,
    CreateClipRequest,
    EditClipRequest,
    PutWordsRequest,
)
from serve_apps.api.services.results import owned_clip
from serve_apps.api.services.videos import CLIPS_NS

# Players report a duration rounded to the millisecond; an end this close to it is the end.
_END_TOLERANCE_S = 0.001


def clip_out(clip: StoredClip) -> ClipOut:
    """API view of a clip row."""
    return ClipOut.model_validate(clip.to_json())


def get(deps: ApiDeps, key: ApiKey, clip_id: uuid.UUID) -> ClipOut:
    """`GET /v1/clips/{id}`."""
    return clip_out(deps.read(key, lambda conn: owned_clip(conn, key, clip_id)))


def edit(
    deps: ApiDeps, key: ApiKey, clip_id: uuid.UUID, body: EditClipRequest, idem: str | None
) -> JSONResponse:
    """`PATCH /v1/clips/{id}`: snap the asked bounds and store them; the clip is `edited`."""

    def action(conn: Conn) -> ClipOut:
        clip = _owned_for_edit(conn, key, clip_id)
        start = body.start_s if body.start_s is not None else clip.start_s
        end = body.end_s if body.end_s is not None else clip.end_s
        video, transcript = _video_and_transcript(conn, key, clip.video_id)
        snapped_start, snapped_end = _snap(video, transcript, start, end)
        row = set_clip_bounds(conn, clip_id=clip.id, start_s=snapped_start, end_s=snapped_end)
        assert row is not None  # locked by this transaction
        return clip_out(row)

    return _write(deps, key, idem, f"clips.edit:{clip_id}", body, 200, action)


def create(deps: ApiDeps, key: ApiKey, body: CreateClipRequest, idem: str | None) -> JSONResponse:
    """`POST /v1/clips`: a clip of a chosen span of a ready video, snapped like detection's."""

    def action(conn: Conn) -> ClipOut:
        video, transcript = _video_and_transcript(conn, key, body.video_id)
        start, end = _snap(video, transcript, body.start_s, body.end_s)
        words = [transcript.words[i] for i in span_indices(transcript.words, start, end)]
        title = body.title or _first_sentence(words)
        clip = create_user_clip(
            conn, video_id=video.id, start_s=start, end_s=end, title=title, hook=""
        )
        return clip_out(clip)

    return _write(deps, key, idem, "clips.create", body, 201, action)


def words(deps: ApiDeps, key: ApiKey, clip_id: uuid.UUID) -> ClipWords:
    """`GET /v1/clips/{id}/words`."""

    def load(conn: Conn) -> ClipWords:
        clip = owned_clip(conn, key, clip_id)
        _, transcript = _video_and_transcript(conn, key, clip.video_id)
        edits = get_word_edits(conn, clip_ids=[clip.id]).get(clip.id, {})
        return _clip_words(clip, transcript, edits)

    return deps.read(key, load)


def put_words(
    deps: ApiDeps, key: ApiKey, clip_id: uuid.UUID, body: PutWordsRequest, idem: str | None
) -> JSONResponse:
    """`PUT /v1/clips/{id}/words`: replace the clip's caption corrections."""

    def action(conn: Conn) -> ClipWords:
        clip = _owned_for_edit(conn, key, clip_id)
        _, transcript = _video_and_transcript(conn, key, clip.video_id)
        heard = transcript.words
        inside = set(span_indices(heard, clip.start_s, clip.end_s))
        outside = sorted(c.index for c in body.words if c.index not in inside)
        if outside:
            raise ValidationFailed(f"words {outside[:10]} are not inside the clip")
        # A "correction" to what was heard is no correction: nothing to store for it.
        edits = {c.index: c.text for c in body.words if c.text != heard[c.index].text}
        replace_word_edits(conn, clip_id=clip.id, edits=edits)
        mark_edited(conn, clip_id=clip.id)
        return _clip_words(clip, transcript, edits)

    return _write(deps, key, idem, f"clips.words:{clip_id}", body, 200, action)


def _write(
    deps: ApiDeps,
    key: ApiKey,
    idem: str | None,
    route: str,
    body: BaseModel,
    status: int,
    action: Callable[[Conn], ClipOut | ClipWords],
) -> JSONResponse:
    video_ids: list[uuid.UUID] = []

    def run(conn: Conn) -> BaseModel:
        result = action(conn)
        video_ids.append(result.video_id)
        return result

    response = run_idempotent(
        deps.pool,
        api_key_id=key.id,
        key=idem,
        request_hash=fingerprint(route, body),
        status_code=status,
        action=run,
    )
    for video_id in video_ids:  # empty for a replay: nothing changed
        deps.cache.invalidate(CLIPS_NS, str(video_id))
    return response


def _owned_for_edit(conn: Conn, key: ApiKey, clip_id: uuid.UUID) -> StoredClip:
    # Locked, so a detect commit that replaces the video's clips meanwhile waits and then keeps
    # this one (edited by then) instead of deleting it under the edit.
    clip = lock_clip(conn, clip_id=clip_id)
    if clip is None or get_video(conn, video_id=clip.video_id, owner_key_id=key.id) is None:
        raise NotFound(f"clip {clip_id} not found")  # same answer as `owned_clip`
    return clip


def _video_and_transcript(conn: Conn, key: ApiKey, video_id: uuid.UUID) -> tuple[Video, Transcript]:
    video = get_video(conn, video_id=video_id, owner_key_id=key.id)
    if video is None:
        raise NotFound(f"video {video_id} not found")
    transcript = get_transcript(conn, video_id=video_id)
    if video.status != "ready" or transcript is None or not transcript.words:
        raise Conflict(f"video {video_id} has no clips to edit yet (status: {video.status})")
    return video, transcript


def _snap(video: Video, transcript: Transcript, start: float, end: float) -> tuple[float, float]:
    """The asked span snapped to word edges and silences, within the video; 422 if it cannot."""
    from models.select import snap_span  # the scorer's modules: loaded on the first edit only

    duration = video.duration_s or transcript.duration
    if end > duration + _END_TOLERANCE_S:
        raise ValidationFailed(f"end_s {end:.3f} is after the end of the video ({duration:.3f} s)")
    if end <= start:
        raise ValidationFailed("end_s must be after start_s")
    span = snap_span(transcript, start, end)
    if span is None:
        raise ValidationFailed(f"no word is spoken between {start:.3f} s and {end:.3f} s")
    snapped_start, snapped_end = max(0.0, span.start), min(duration, span.end)
    if snapped_end - snapped_start > MAX_CLIP_S:
        raise ValidationFailed(f"a clip is at most {MAX_CLIP_S:.0f} s long")
    return snapped_start, snapped_end


def _first_sentence(words: Sequence[Word]) -> str:
    from models.caption_titles import TitleOptions, sentences_of, tidy

    sentences = sentences_of(words)
    return tidy(sentences[0], TitleOptions().max_title_chars) if sentences else ""


def _clip_words(clip: StoredClip, transcript: Transcript, edits: dict[int, str]) -> ClipWords:
    words = transcript.words
    return ClipWords(
        clip_id=clip.id,
        video_id=clip.video_id,
        start_s=clip.start_s,
        end_s=clip.end_s,
        words=[
            ClipWordOut(
                index=i,
                start=words[i].start,
                end=words[i].end,
                text=edits.get(i, words[i].text),
                heard=words[i].text,
                corrected=i in edits,
                speaker=words[i].speaker,
            )
            for i in span_indices(words, clip.start_s, clip.end_s)
        ],
    )
