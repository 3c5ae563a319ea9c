"""Typed errors of `clipforge.client`.

Every 4xx/5xx answer of the API has one body, `{"error": {"code", "message", "request_id",
"details"}}` (`serve_apps/api/errors.py`); `ApiError.from_response` turns it into the subclass
for its status, so callers catch `ApiNotFound` or `RateLimited` instead of reading status codes.
"""

from __future__ import annotations

from typing import Any

import httpx

from clipforge.client.models import ExportOut, VideoOut


class ApiError(Exception):
    """An error answer of the API.

    Attributes:
        status: HTTP status code.
        code: stable machine-readable code, e.g. `not_found`.
        message: human-readable explanation.
        request_id: the request's id (quote it when reporting a problem).
        details: per-field problems of an invalid request.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        details: list[Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message} (request {request_id or 'unknown'})")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.details = details

    @staticmethod
    def from_response(response: httpx.Response) -> ApiError:
        """The typed error for an error `response` (non-JSON bodies included)."""
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
            request_id, details = error.get("request_id"), error.get("details")
        except (ValueError, KeyError, TypeError):  # not our error body, e.g. from a proxy
            code, message = "http_error", response.text[:500] or response.reason_phrase
            request_id, details = None, None
        request_id = request_id or response.headers.get("x-request-id")
        status = response.status_code
        if status == 429:
            retry_after = float(response.headers.get("retry-after", "1") or 1)
            return RateLimited(status, code, message, request_id, details, retry_after)
        kind = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
        return kind(status, code, message, request_id, details)


class BadRequest(ApiError):
    """400: the body is not valid JSON, or similar."""


class Unauthorized(ApiError):
    """401: no, an unknown or a revoked API key."""


class ApiNotFound(ApiError):
    """404: no such resource for this key."""


class ApiConflict(ApiError):
    """409: the resource is not in a state that allows this (or an Idempotency-Key clash)."""


class PayloadTooLarge(ApiError):
    """413: the upload or body is over the server's limit."""


class UnsupportedMediaType(ApiError):
    """415: the body is not audio or video."""


class InvalidRequest(ApiError):
    """422: the request failed validation; `details` says which fields."""


class RateLimited(ApiError):
    """429: over the key's request rate; retry after `retry_after_s`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None,
        details: list[Any] | None,
        retry_after_s: float,
    ) -> None:
        super().__init__(status, code, message, request_id, details)
        self.retry_after_s = retry_after_s


class ServerError(ApiError):
    """5xx: the server or one of its dependencies failed; retrying may help."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: ApiNotFound,
    409: ApiConflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidRequest,
}


class VideoFailed(Exception):
    """Processing of a video ended in `failed`; `reason` is the video's `error`."""

    def __init__(self, video: VideoOut) -> None:
        self.video = video
        self.reason = video.error or "no reason given"
        super().__init__(f"video {video.id} failed: {self.reason}")


class ExportFailed(Exception):
    """Rendering of an export ended in `failed`; `reason` is the export's `error`."""

    def __init__(self, export: ExportOut) -> None:
        self.export = export
        self.reason = export.error or "no reason given"
        super().__init__(f"export {export.id} failed: {self.reason}")


class WaitTimeout(TimeoutError):
    """A wait ran out of time; `last_status` is the status seen last."""

    def __init__(self, what: str, last_status: str, timeout_s: float) -> None:
        self.last_status = last_status
        super().__init__(f"{what} still {last_status!r} after {timeout_s:.0f} s")
