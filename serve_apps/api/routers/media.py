"""`/media/{key}`: downloads of rendered media through signed URLs (local-folder storage)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from serve_apps.api.deps import Deps
from serve_apps.api.protocol import ErrorResponse
from serve_apps.api.services import media

router = APIRouter(tags=["media"])

_Param = Annotated[str, Query(max_length=200)]


@router.head("/media/{key:path}", response_class=FileResponse, include_in_schema=False)
@router.get(
    "/media/{key:path}",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/mp4": {}, "image/jpeg": {}, "text/vtt": {}}},
        206: {"description": "The requested byte range (`Range: bytes=...`)."},
        403: {"model": ErrorResponse, "description": "Tampered, expired or revoked URL."},
        404: {"model": ErrorResponse, "description": "No such file, or storage is not local."},
        422: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
def download_media(
    key: str, deps: Deps, tenant: _Param = "", expires: _Param = "", signature: _Param = ""
) -> FileResponse:
    """Download an export's MP4, poster frame or caption file by the URL an export gave.

    No `Authorization` header: the URL carries its own signature (like an S3 presigned URL),
    so players and `curl -O` can use it. Only with local-folder storage; with S3 the export's
    URLs point at S3 or the CDN.
    """
    return media.download(deps, key, tenant=tenant, expires=expires, signature=signature)
