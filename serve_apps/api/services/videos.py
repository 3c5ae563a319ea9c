"""Video use cases: create (URL, presigned upload, small direct upload), read, list, delete.

Nothing here runs long work: creating a video writes its row and its `import` job in one
transaction; the worker does the rest. Reads go through the cache (5 min TTL, invalidated
on every write made here; the pipelines invalidate on theirs).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi.responses import JSONResponse

from clipforge.cache import VIDEO_TTL_S
from clipforge.db.pool import Conn, Pool
from clipforge.db.repo.api_keys import ApiKey
from clipforge.db.repo.videos import Video, VideoStatus, create_video, get_video, update_video
from clipforge.db.repo.videos import delete_video as delete_video_row
from clipforge.db.repo.videos import list_videos as list_video_rows
from clipforge.errors import Conflict, NotFound
from clipforge.fetch import check_url, parse_networks
from clipforge.pagination import Cursor
from clipforge.queue import QueuePolicy, enqueue
from clipforge.storage import ObjectInfo
from clipforge.storage.keys import upload_key, video_prefix
from serve_apps.api.deps import ApiDeps
from serve_apps.api.errors import PayloadTooLarge, UploadMismatch
from serve_apps.api.idempotency import fingerprint, replay, run_idempotent
from serve_apps.api.protocol import (
    CreateVideoRequest,
    UploadTarget,
    VideoCreated,
    VideoOut,
    VideoPage,
)
from serve_apps.api.uploads import SpooledUpload

log = logging.getLogger(__name__)

IMPORT_JOB = "import"
# Cache namespaces, shared with the pipelines (which invalidate them when they write).
VIDEO_NS, CLIPS_NS, TRANSCRIPT_NS = "video", "clips", "transcript"


def video_out(video: Video) -> VideoOut:
    """API view of a row."""
    return VideoOut.model_validate(video.to_json())


def _enqueue_import(conn: Conn, policy: QueuePolicy, video_id: uuid.UUID) -> int:
    # One import per video, however often a client retries "uploaded".
    job = enqueue(
        conn,
        policy,
        kind=IMPORT_JOB,
        payload={"video_id": str(video_id)},
        video_id=video_id,
        idempotency_key=f"import:{video_id}",
    )
    return job.id


def create(deps: ApiDeps, key: ApiKey, body: CreateVideoRequest, idem: str | None) -> JSONResponse:
    """`POST /v1/videos`: a URL import (202 with its job) or a presigned upload (201)."""
    metadata: dict[str, Any] = {"title": body.title} if body.title else {}
    if body.source_url is not None:
        allowed = parse_networks(deps.settings.fetch_allow_cidrs)
        checked = check_url(body.source_url, allowed=allowed, resolver=deps.resolver)

        def from_url(conn: Conn) -> VideoCreated:
            video = create_video(
                conn,
                owner_key_id=key.id,
                source_kind="url",
                source_url=checked.url,
                metadata=metadata,
            )
            return VideoCreated(
                video=video_out(video), job_id=_enqueue_import(conn, deps.queue, video.id)
            )

        return _idempotent(deps.pool, key, idem, body, 202, from_url)
    assert body.upload is not None
    if body.upload.size_bytes > deps.settings.max_source_bytes:
        raise PayloadTooLarge(f"videos are limited to {deps.settings.max_source_bytes} bytes")
    # A fresh id even with an Idempotency-Key: a retry replays the stored answer (same URL),
    # and a racing request with other data gets a 409, never a URL to the same object.
    video_id = uuid.uuid4()
    expires = deps.settings.s3_presign_expiry_s
    declared_type = body.upload.content_type
    target = UploadTarget(
        url=deps.store.presign_put(
            upload_key(video_id), expires_s=expires, content_type=declared_type
        ),
        expires_in_s=expires,
        complete_url=f"/v1/videos/{video_id}/uploaded",
    )
    metadata |= {"declared_size_bytes": body.upload.size_bytes}
    if declared_type is not None:
        metadata |= {"declared_content_type": declared_type}

    def for_upload(conn: Conn) -> VideoCreated:
        video = create_video(
            conn,
            owner_key_id=key.id,
            source_kind="upload",
            status="uploading",
            video_id=video_id,
            metadata=metadata,
        )
        return VideoCreated(video=video_out(video), job_id=None, upload=target)

    return _idempotent(deps.pool, key, idem, body, 201, for_upload)


def complete_upload(
    deps: ApiDeps, key: ApiKey, video_id: uuid.UUID, idem: str | None
) -> JSONResponse:
    """`POST /v1/videos/{id}/uploaded`: check the object landed, then queue the import."""
    video = owned(deps.pool, key, video_id)
    if video.status != "uploading":
        raise Conflict(f"video is {video.status}; its upload was already completed")
    info = deps.store.head(upload_key(video_id))
    if info is None:
        raise Conflict("nothing was uploaded to the presigned URL yet")
    if info.size > deps.settings.max_source_bytes:
        deps.store.delete(upload_key(video_id))
        raise PayloadTooLarge(f"videos are limited to {deps.settings.max_source_bytes} bytes")
    _check_declared(deps, video, info)

    def queue(conn: Conn) -> VideoCreated:
        row = update_video(conn, video_id=video_id, status="pending", size_bytes=info.size)
        assert row is not None
        return VideoCreated(
            video=video_out(row), job_id=_enqueue_import(conn, deps.queue, video_id)
        )

    response = _idempotent(deps.pool, key, idem, f"uploaded:{video_id}".encode(), 202, queue)
    deps.cache.invalidate(VIDEO_NS, str(video_id))
    return response


def _check_declared(deps: ApiDeps, video: Video, info: ObjectInfo) -> None:
    # A presigned PUT lets the client send anything; hold it to what it announced (the size
    # limits were checked against the declared size). A mismatch deletes the object, so the
    # client can PUT again to the same URL while it is valid.
    declared_size = video.metadata.get("declared_size_bytes")
    declared_type = video.metadata.get("declared_content_type")
    stored_type = (info.content_type or "").split(";")[0].strip().lower()
    problem = None
    if declared_size is not None and info.size != declared_size:
        problem = f"the upload is {info.size} bytes but {declared_size} were declared"
    elif declared_type and info.content_type and stored_type != str(declared_type).lower():
        # (backends that keep no Content-Type, the local folder, cannot be checked)
        problem = f"the upload's Content-Type is {stored_type!r} but {declared_type!r} was declared"
    if problem is not None:
        deps.store.delete(info.key)
        raise UploadMismatch(f"{problem}; the object was deleted, upload it again")


def upload_fingerprint_prefix(title: str | None) -> bytes:
    """What an upload's fingerprint hashes before its body (see `idempotency.fingerprint`)."""
    return b"upload\x00" + (title or "").encode() + b"\x00"


def upload_direct(
    deps: ApiDeps, key: ApiKey, upload: SpooledUpload, title: str | None, idem: str | None
) -> JSONResponse:
    """`POST /v1/videos/upload`: store a small file sent as the body and queue its import."""
    ext = upload.extension
    request_hash = upload.digest
    if (
        previous := replay(deps.pool, api_key_id=key.id, key=idem, request_hash=request_hash)
    ) is not None:
        return previous
    # A fresh id per attempt: two racing requests with one Idempotency-Key never write the same
    # object; the loser's object is deleted below (it answers with a replay or a 409).
    video_id = uuid.uuid4()
    object_key = upload_key(video_id)
    deps.store.put_file(object_key, upload.path, content_type="application/octet-stream")
    metadata: dict[str, Any] = {"sniffed_container": ext} | ({"title": title} if title else {})
    created = False

    def queue(conn: Conn) -> VideoCreated:
        nonlocal created
        create_video(
            conn,
            owner_key_id=key.id,
            source_kind="upload",
            video_id=video_id,
            metadata=metadata,
        )
        row = update_video(conn, video_id=video_id, size_bytes=upload.size)
        assert row is not None
        created = True
        return VideoCreated(
            video=video_out(row), job_id=_enqueue_import(conn, deps.queue, video_id)
        )

    committed = False
    try:
        response = run_idempotent(
            deps.pool,
            api_key_id=key.id,
            key=idem,
            request_hash=request_hash,
            status_code=202,
            action=queue,
        )
        # run_idempotent returns only after the commit: our row exists unless it replayed.
        committed = created
        return response
    finally:
        if not committed:
            _discard(deps, object_key)


def _discard(deps: ApiDeps, object_key: str) -> None:
    # No object without a row: the transaction failed, or another request won the key.
    try:
        deps.store.delete(object_key)
    except Exception:  # the request's own error matters more; the sweep can find this one
        log.warning("could not delete an orphaned upload", extra={"key": object_key})


def _idempotent(
    pool: Pool,
    key: ApiKey,
    idem: str | None,
    request: CreateVideoRequest | bytes,
    status: int,
    action: Any,
) -> JSONResponse:
    route = "videos" if isinstance(request, CreateVideoRequest) else "uploaded"
    return run_idempotent(
        pool,
        api_key_id=key.id,
        key=idem,
        request_hash=fingerprint(route, request),
        status_code=status,
        action=action,
    )


def owned(pool: Pool, key: ApiKey, video_id: uuid.UUID) -> Video:
    """The key's video from Postgres (for writes); 404 for missing and other keys' videos."""
    with pool.connection() as conn:
        video = get_video(conn, video_id=video_id, owner_key_id=key.id)
    if video is None:
        raise NotFound(f"video {video_id} not found")
    return video


def owned_cached(deps: ApiDeps, key: ApiKey, video_id: uuid.UUID) -> dict[str, Any]:
    """The key's video as cached JSON (for reads); 404 for missing and other keys' videos."""

    def load() -> dict[str, Any] | None:
        video = deps.read(key, lambda conn: get_video(conn, video_id=video_id), fills_cache=True)
        return video.to_json() if video else None

    data: dict[str, Any] | None = deps.cache.get_or_load(
        VIDEO_NS, str(video_id), ttl_s=VIDEO_TTL_S, loader=load
    )
    # Ownership is checked on every read, cached or not: the cache is shared by all keys.
    if data is None or data.get("owner_key_id") != str(key.id):
        raise NotFound(f"video {video_id} not found")
    return data


def get_prefetched(deps: ApiDeps, key: ApiKey, video_id: uuid.UUID) -> VideoOut | None:
    """`get` from the value read with the rate-limit check, if it was a hit (no I/O)."""
    data = deps.cache.peek(VIDEO_NS, str(video_id))
    if data is None:
        return None
    if data.get("owner_key_id") != str(key.id):
        raise NotFound(f"video {video_id} not found")
    return VideoOut.model_validate(data)


def get(deps: ApiDeps, key: ApiKey, video_id: uuid.UUID) -> VideoOut:
    """`GET /v1/videos/{id}`."""
    return VideoOut.model_validate(owned_cached(deps, key, video_id))


def page(
    deps: ApiDeps, key: ApiKey, *, limit: int, cursor: str | None, status: VideoStatus | None
) -> VideoPage:
    """`GET /v1/videos`: newest first, keyset-paginated."""
    position = Cursor.decode(cursor) if cursor else None
    rows, nxt = deps.read(
        key,
        lambda conn: list_video_rows(
            conn, owner_key_id=key.id, limit=limit, cursor=position, status=status
        ),
    )
    return VideoPage(items=[video_out(v) for v in rows], next_cursor=nxt.encode() if nxt else None)


def delete(deps: ApiDeps, key: ApiKey, video_id: uuid.UUID) -> None:
    """`DELETE /v1/videos/{id}`: rows (jobs, transcript, clips, exports by cascade), then objects."""
    owned(deps.pool, key, video_id)
    with deps.pool.connection() as conn, conn.transaction():
        delete_video_row(conn, video_id=video_id)
    # Objects go after the rows commit: a failure here leaves unreachable objects, never rows
    # pointing at missing objects.
    deps.store.delete_prefix(video_prefix(video_id))
    deps.store.delete(upload_key(video_id))
    for namespace in (VIDEO_NS, CLIPS_NS, TRANSCRIPT_NS):
        deps.cache.invalidate(namespace, str(video_id))
