"""A typed, synchronous HTTP client of the ClipForge REST API (`/v1`), over httpx.

    from clipforge.client import Client

    with Client("http://127.0.0.1:8000", api_key) as api:
        video = api.upload_video("talk.mp4", title="talk").video
        video = api.wait_for_video(video.id)        # raises VideoFailed with the reason
        clips = list(api.list_clips(video.id))      # follows keyset cursors
        clip = api.edit_clip(clips[0].id, start_s=12.0)    # snapped to a word edge
        api.correct_words(clip.id, {api.get_clip_words(clip.id).words[0].index: "Hello"})
        export = api.wait_for_export(api.create_export(clips[0].id).export.id)
        api.download(export.url, "clip.mp4")

Answers are pydantic models (`clipforge.client.models`); error answers raise the typed
exceptions of `clipforge.client.errors` (status, code, request id). Only the Python standard
library, httpx and pydantic are needed: the client imports nothing from the server side.
"""

from __future__ import annotations

import mimetypes
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel

from clipforge.client.errors import (
    ApiError,
    ExportFailed,
    RateLimited,
    ServerError,
    VideoFailed,
    WaitTimeout,
)
from clipforge.client.models import (
    ClipOut,
    ClipPage,
    ClipWords,
    ExportCreated,
    ExportOut,
    TranscriptOut,
    VideoCreated,
    VideoOut,
    VideoPage,
    VideoStatus,
)

__all__ = ["Client"]

M = TypeVar("M", bound=BaseModel)
Id = uuid.UUID | str


class Client:
    """One API key against one API; use as a context manager or call `close()`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 30.0,
        *,
        retries: int = 3,
        http: httpx.Client | None = None,
    ) -> None:
        """`retries`: attempts after a 429 (waiting Retry-After) or a 5xx/connection error on
        reads. `http`: an httpx client to send API requests through (proxies, custom TLS, or an
        in-process ASGI app); by default one is created for `base_url`."""
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._owns_http = http is None  # a client handed in is closed by whoever made it
        self._http = http or httpx.Client(base_url=self.base_url, timeout=timeout)
        # Presigned uploads and media downloads go to S3/the CDN: never send them the API key.
        self._plain = httpx.Client(timeout=timeout, follow_redirects=True)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        if self._owns_http:
            self._http.close()
        self._plain.close()

    # -- videos -------------------------------------------------------------------------------

    def create_video(
        self, source_url: str, title: str | None = None, idempotency_key: str | None = None
    ) -> VideoCreated:
        """Import a video from a public http(s) URL; the import job is queued (202)."""
        body = {"source_url": source_url} | ({"title": title} if title else {})
        return self._call(VideoCreated, "POST", "/v1/videos", json=body, idem=idempotency_key)

    def upload_video(
        self,
        path: str | Path,
        title: str | None = None,
        *,
        method: Literal["presigned", "direct"] = "presigned",
        idempotency_key: str | None = None,
    ) -> VideoCreated:
        """Upload a local file and queue its import.

        `presigned` (any size the server allows, needs S3 storage): ask for a presigned URL,
        PUT the file straight to storage, confirm. `direct`: send the file as the request body
        (small files only, up to the server's `API_MAX_DIRECT_UPLOAD_BYTES`).
        """
        file = Path(path)
        content_type = mimetypes.guess_type(file.name)[0] or "video/mp4"
        if not content_type.startswith(("video/", "audio/")):
            content_type = "video/mp4"
        if method == "direct":
            with file.open("rb") as data:
                return self._call(
                    VideoCreated,
                    "POST",
                    "/v1/videos/upload",
                    content=data.read(),
                    params={"title": title} if title else None,
                    headers={"Content-Type": content_type},
                    idem=idempotency_key,
                )
        spec = {"size_bytes": file.stat().st_size, "content_type": content_type}
        body: dict[str, Any] = {"upload": spec} | ({"title": title} if title else {})
        created = self._call(VideoCreated, "POST", "/v1/videos", json=body, idem=idempotency_key)
        if created.upload is None:
            raise ApiError(500, "no_upload_target", "the API returned no upload URL")
        with file.open("rb") as data:
            put = self._plain.put(
                created.upload.url, content=data, headers={"Content-Type": content_type}
            )
        if put.status_code >= 300:
            raise ApiError(put.status_code, "upload_failed", put.text[:500])
        return self._call(VideoCreated, "POST", created.upload.complete_url, idem=idempotency_key)

    def get_video(self, video_id: Id) -> VideoOut:
        """One video."""
        return self._call(VideoOut, "GET", f"/v1/videos/{video_id}")

    def delete_video(self, video_id: Id) -> None:
        """Delete the video, its clips, exports and stored media (204; `ApiNotFound` if unknown)."""
        self._send("DELETE", f"/v1/videos/{video_id}")

    def video_pages(
        self, *, status: VideoStatus | None = None, limit: int = 50
    ) -> Iterator[VideoPage]:
        """The key's videos page by page, newest first (keyset cursors)."""
        params = {"status": status} if status else {}
        return self._pages(VideoPage, "/v1/videos", limit, params)

    def list_videos(
        self, *, status: VideoStatus | None = None, limit: int = 50
    ) -> Iterator[VideoOut]:
        """Every video of the key, newest first, fetching `limit` per request."""
        for page in self.video_pages(status=status, limit=limit):
            yield from page.items

    def wait_for_video(
        self,
        video_id: Id,
        timeout_s: float = 1800.0,
        poll_s: float = 1.0,
        *,
        on_status: Callable[[VideoOut], None] | None = None,
    ) -> VideoOut:
        """Poll until the video is `ready` and return it.

        Polls back off from `poll_s` to 10x that while the status stays the same. Raises
        `VideoFailed` (with the video's reason) when it fails, `WaitTimeout` after
        `timeout_s`. `on_status` is called with the video whenever its status changes.
        """
        video = self._wait(
            lambda: self.get_video(video_id), f"video {video_id}", timeout_s, poll_s, on_status
        )
        if video.status != "ready":
            raise VideoFailed(video)
        return video

    # -- results ------------------------------------------------------------------------------

    def get_transcript(self, video_id: Id) -> TranscriptOut:
        """The video's word-timed transcript."""
        return self._call(TranscriptOut, "GET", f"/v1/videos/{video_id}/transcript")

    def get_captions(self, video_id: Id, format: Literal["srt", "vtt"] = "srt") -> str:
        """Captions of the whole video as SRT or WebVTT text."""
        path = f"/v1/videos/{video_id}/transcript"
        return self._send("GET", path, params={"format": format}).text

    def clip_pages(self, video_id: Id, *, limit: int = 50) -> Iterator[ClipPage]:
        """The video's clips page by page (keyset cursors)."""
        return self._pages(ClipPage, f"/v1/videos/{video_id}/clips", limit, {})

    def list_clips(self, video_id: Id, *, limit: int = 50) -> Iterator[ClipOut]:
        """Every clip of the video, in creation order (sort by `rank` for best first)."""
        for page in self.clip_pages(video_id, limit=limit):
            yield from page.items

    def get_clip(self, clip_id: Id) -> ClipOut:
        """One clip."""
        return self._call(ClipOut, "GET", f"/v1/clips/{clip_id}")

    def edit_clip(
        self,
        clip_id: Id,
        *,
        start_s: float | None = None,
        end_s: float | None = None,
        idempotency_key: str | None = None,
    ) -> ClipOut:
        """Move a clip's start and/or end (seconds in the video); the answer holds the bounds
        snapped to word edges and silences. The clip becomes `edited`."""
        body = {k: v for k, v in (("start_s", start_s), ("end_s", end_s)) if v is not None}
        path = f"/v1/clips/{clip_id}"
        return self._call(ClipOut, "PATCH", path, json=body, idem=idempotency_key)

    def create_clip(
        self,
        video_id: Id,
        start_s: float,
        end_s: float,
        *,
        title: str | None = None,
        idempotency_key: str | None = None,
    ) -> ClipOut:
        """Make a clip of a chosen span of a ready video (snapped like `edit_clip`)."""
        body: dict[str, Any] = {"video_id": str(video_id), "start_s": start_s, "end_s": end_s}
        body |= {"title": title} if title else {}
        return self._call(ClipOut, "POST", "/v1/clips", json=body, idem=idempotency_key)

    def get_clip_words(self, clip_id: Id) -> ClipWords:
        """The clip's words as its captions show them (`index` names a word in corrections)."""
        return self._call(ClipWords, "GET", f"/v1/clips/{clip_id}/words")

    def correct_words(
        self, clip_id: Id, corrections: dict[int, str], *, idempotency_key: str | None = None
    ) -> ClipWords:
        """Set the clip's caption corrections (word index -> text), replacing earlier ones;
        timings stay. Exports made after this show the corrected text."""
        body = {"words": [{"index": i, "text": t} for i, t in sorted(corrections.items())]}
        path = f"/v1/clips/{clip_id}/words"
        return self._call(ClipWords, "PUT", path, json=body, idem=idempotency_key)

    def create_export(
        self,
        clip_id: Id,
        aspect_ratio: Literal["9:16", "4:5", "1:1", "16:9"] = "9:16",
        caption_style: Literal[
            "auto", "shorts", "karaoke", "bold", "minimal", "speakers", "subtitle"
        ] = "auto",
        idempotency_key: str | None = None,
        layout: Literal["auto", "speaker", "split", "center"] = "auto",
    ) -> ExportCreated:
        """Render a clip (frame shape, burned captions, who the crop follows); poll it with
        `wait_for_export`."""
        body = {"aspect_ratio": aspect_ratio, "caption_style": caption_style, "layout": layout}
        path = f"/v1/clips/{clip_id}/exports"
        return self._call(ExportCreated, "POST", path, json=body, idem=idempotency_key)

    def get_export(self, export_id: Id) -> ExportOut:
        """One export; `url` is set once it is ready."""
        return self._call(ExportOut, "GET", f"/v1/exports/{export_id}")

    def wait_for_export(
        self,
        export_id: Id,
        timeout_s: float = 900.0,
        poll_s: float = 1.0,
        *,
        on_status: Callable[[ExportOut], None] | None = None,
    ) -> ExportOut:
        """Poll until the export is `ready` (like `wait_for_video`; raises `ExportFailed`)."""
        export = self._wait(
            lambda: self.get_export(export_id), f"export {export_id}", timeout_s, poll_s, on_status
        )
        if export.status != "ready":
            raise ExportFailed(export)
        return export

    def download(self, url: str, path: str | Path) -> Path:
        """Stream `url` (an export's `url`, `thumbnail_url` or one of its `caption_urls`) to
        `path`; returns `path`."""
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # A relative URL is served by the API itself and needs the key. The API's signed
        # `/media/` URLs (local storage) carry their own signature: they go through the API's
        # transport (in-process in tests) but without the key, like presigned S3 URLs.
        if url.startswith("/"):
            client, headers = self._http, self._auth
        elif url.startswith(f"{self.base_url}/"):
            client, headers = self._http, {}
        else:
            client, headers = self._plain, {}
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError.from_response(response)
            with dest.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        return dest

    # -- plumbing -----------------------------------------------------------------------------

    def _call(
        self,
        model: type[M],
        method: str,
        path: str,
        *,
        idem: str | None = None,
        **kwargs: Any,
    ) -> M:
        return model.model_validate(self._send(method, path, idem=idem, **kwargs).json())

    def _send(
        self,
        method: str,
        path: str,
        *,
        idem: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request with the key; retries 429 always and 5xx/connection errors on reads or
        with an Idempotency-Key (where a repeat cannot do the work twice)."""
        sent = self._auth | (headers or {}) | ({"Idempotency-Key": idem} if idem else {})
        safe = method == "GET" or idem is not None
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.request(method, path, headers=sent, **kwargs)
            except httpx.TransportError:
                if not safe or last:
                    raise
                time.sleep(min(2.0**attempt, 10.0))
                continue
            if response.status_code < 400:
                return response
            error = ApiError.from_response(response)
            if isinstance(error, RateLimited) and not last:
                time.sleep(error.retry_after_s)
            elif isinstance(error, ServerError) and safe and not last:
                time.sleep(min(2.0**attempt, 10.0))
            else:
                raise error
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _pages(self, model: type[M], path: str, limit: int, params: dict[str, Any]) -> Iterator[M]:
        cursor: str | None = None
        while True:
            query = params | {"limit": limit} | ({"cursor": cursor} if cursor else {})
            page = self._call(model, "GET", path, params=query)
            yield page
            cursor = getattr(page, "next_cursor", None)
            if cursor is None:
                return

    @staticmethod
    def _wait(
        fetch: Callable[[], M],
        what: str,
        timeout_s: float,
        poll_s: float,
        on_status: Callable[[M], None] | None,
    ) -> M:
        """Fetch until the status is `ready` or `failed`, backing off while nothing changes."""
        deadline = time.monotonic() + timeout_s
        delay, last = poll_s, ""
        while True:
            item = fetch()
            status = str(getattr(item, "status", ""))
            if status != last:
                last, delay = status, poll_s  # progress: look again soon
                if on_status is not None:
                    on_status(item)
            if status in ("ready", "failed"):
                return item
            if time.monotonic() + delay > deadline:
                raise WaitTimeout(what, status, timeout_s)
            time.sleep(delay)
            delay = min(delay * 1.5, poll_s * 10)
