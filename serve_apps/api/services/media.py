"""Download URLs of rendered media, and the `/media/` downloads of the local-folder backend.

An export's MP4, poster frame and caption files are all reached the same way: through the CDN
when `CDN_BASE_URL` is set, else through a presigned S3 URL, else (local folder, the embedded
default) through the API's own signed URL (`clipforge.storage.signed`). A client never sees a
server path.
"""

from __future__ import annotations

import re
import uuid

from fastapi.responses import FileResponse

from clipforge.db.repo.api_keys import owns_video
from clipforge.errors import NotFound
from clipforge.storage import LocalStore
from clipforge.storage.keys import EXPORT_CONTENT_TYPES
from serve_apps.api.deps import ApiDeps
from serve_apps.api.errors import Forbidden

CAPTION_FORMATS = ("srt", "vtt", "ass")
# Only the files of exports are served (clipforge.storage.keys.export_key); a video's original,
# its audio track and uploads are never downloadable, even with a valid signature.
_SERVABLE = re.compile(
    r"^videos/(?P<video>[0-9a-f-]{36})/exports/[0-9a-f-]{36}\.(?P<ext>mp4|jpg|srt|vtt|ass)$"
)


def media_url(deps: ApiDeps, key: str, *, tenant: uuid.UUID, base_url: str) -> str:
    """Where the API key `tenant` downloads the object `key`; `base_url`: the request's."""
    if deps.signer is None:
        return deps.store.public_url(key)
    return deps.signer.url(deps.settings.api_public_url or base_url, key, tenant=tenant)


def sibling_key(object_key: str, ext: str) -> str:
    """The key of an export's file with another extension (they share the export's stem)."""
    return f"{object_key.rsplit('.', 1)[0]}.{ext}"


def download(deps: ApiDeps, key: str, *, tenant: str, expires: str, signature: str) -> FileResponse:
    """`GET /media/{key}`: the file, if the URL is signed, unexpired, and its key still owns the
    video. Range requests are answered by `FileResponse` (206 with Content-Range)."""
    store = deps.store
    if deps.signer is None or not isinstance(store, LocalStore):
        raise NotFound("media is served by the storage backend, not the API")
    owner = deps.signer.check(key, tenant=tenant, expires=expires, signature=signature)
    if owner is None:
        raise Forbidden("the download URL is invalid or has expired; fetch the export again")
    match = _SERVABLE.match(key)
    if match is None:
        raise NotFound("no such media")
    video_id = uuid.UUID(match["video"])
    # On the primary, as API-key lookups: a revoked key stops downloading at once.
    with deps.pool.connection() as conn:
        if not owns_video(conn, key_id=owner, video_id=video_id):
            raise Forbidden("the download URL is no longer valid")
    path = store.file_of(key)
    if not path.is_file():
        raise NotFound("no such media")
    return FileResponse(path, media_type=EXPORT_CONTENT_TYPES[match["ext"]])
