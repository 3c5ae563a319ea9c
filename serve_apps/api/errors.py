"""HTTP-only errors and the one place where every error becomes an `ErrorResponse`.

Domain errors (`clipforge.errors`) carry their own status and code; request parsing errors from
FastAPI and Starlette are mapped onto the same body, so a client handles exactly one shape.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from clipforge.errors import ClipForgeError
from clipforge.logging import request_id_var

log = logging.getLogger(__name__)


class Unauthorized(ClipForgeError):
    """No, a malformed, unknown or revoked API key."""

    http_status = 401
    code = "unauthorized"


class RateLimited(ClipForgeError):
    """The API key is over its request rate; retry after `retry_after_s`."""

    http_status = 429
    code = "rate_limited"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"rate limit exceeded; retry in {retry_after_s:.3f}s")
        self.retry_after_s = retry_after_s


class PayloadTooLarge(ClipForgeError):
    """The request body is over the route's size limit."""

    http_status = 413
    code = "payload_too_large"


class UnsupportedMedia(ClipForgeError):
    """The body is not a media type the route accepts."""

    http_status = 415
    code = "unsupported_media_type"


class ModelsUnavailable(ClipForgeError):
    """Model endpoints are served by the Serve ingress, not by this process."""

    retryable = True
    http_status = 503
    code = "models_unavailable"


def error_body(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    """The `ErrorResponse` JSON (see `protocol.ErrorResponse`)."""
    error: dict[str, Any] = {"code": code, "message": message, "request_id": request_id_var.get()}
    if details:
        error["details"] = details
    return {"error": error}


def error_response(
    status: int, code: str, message: str, *, details: list[Any] | None = None
) -> JSONResponse:
    """An `ErrorResponse` with `status`."""
    return JSONResponse(error_body(code, message, details), status_code=status)


async def _clipforge_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ClipForgeError)
    if exc.http_status >= 500:
        log.warning("request failed", extra={"code": exc.code, "error": str(exc)})
    response = error_response(exc.http_status, exc.code, str(exc) or exc.code)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return response


def _jsonable(errors: list[Any]) -> list[Any]:
    # Pydantic puts the offending input and exception objects into `ctx`; keep what is JSON.
    cleaned: list[Any] = json.loads(json.dumps(errors, default=str))
    return cleaned


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "request body is not valid JSON")
    details = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]
    return error_response(422, "validation_error", "request is invalid", details=_jsonable(details))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        exc.status_code, "http_error"
    )
    response = error_response(exc.status_code, code, str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into an `ErrorResponse`."""
    app.add_exception_handler(ClipForgeError, _clipforge_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
