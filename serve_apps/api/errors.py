"""HTTP-only errors and the one place where every error becomes an `ErrorResponse`.

Domain errors (`clipforge.errors`) carry their own status and code; request parsing errors from
FastAPI and Starlette are mapped onto the same body, so a client handles exactly one shape.
A database outage (pool checkout timeout, lost or refused connection) is a 503 with
`Retry-After`, not a 500: the request was fine, the instance just cannot serve it right now.
Every error body carries the request id (`RequestMiddleware` also answers for exceptions that
escape the app, which Starlette's own last-resort handler would answer without one).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from clipforge.errors import ClipForgeError
from clipforge.logging import request_id_var
from clipforge.resilience import dependency_of

log = logging.getLogger(__name__)
Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]
# What a 503 tells clients to wait before retrying (seconds); outages rarely end sooner.
RETRY_AFTER_S = 2
# The most entries an error's `details` list carries. A body with 90,000 unknown keys would
# otherwise get an answer of megabytes that costs more to build than the request cost to send;
# the first few tell a client what to fix.
MAX_ERROR_DETAILS = 20


class Unauthorized(ClipForgeError):
    """No, a malformed, unknown or revoked API key."""

    http_status = 401
    code = "unauthorized"


class Forbidden(ClipForgeError):
    """A download URL that is not (or no longer) valid: tampered, expired, or its key revoked."""

    http_status = 403
    code = "forbidden"


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


class UploadMismatch(ClipForgeError):
    """A presigned upload is not what was declared (size or content type)."""

    http_status = 422
    code = "upload_mismatch"


class UploadsBusy(ClipForgeError):
    """This process already receives API_MAX_CONCURRENT_UPLOADS direct uploads; retry shortly."""

    retryable = True
    http_status = 503
    code = "uploads_busy"


class ModelsUnavailable(ClipForgeError):
    """Model endpoints are served by the Serve ingress, not by this process."""

    retryable = True
    http_status = 503
    code = "models_unavailable"


def error_body(
    code: str, message: str, details: list[Any] | None = None, *, total: int | None = None
) -> dict[str, Any]:
    """The `ErrorResponse` JSON (see `protocol.ErrorResponse`).

    At most `MAX_ERROR_DETAILS` of `details` are kept; when there were more (`total`, else
    `len(details)`) the message says how many were left out.
    """
    error: dict[str, Any] = {"code": code, "message": message, "request_id": request_id_var.get()}
    if details:
        left_out = max(total or len(details), len(details)) - MAX_ERROR_DETAILS
        if left_out > 0:
            error["message"] = f"{message} ({left_out} more errors left out)"
        error["details"] = details[:MAX_ERROR_DETAILS]
    return {"error": error}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: list[Any] | None = None,
    total: int | None = None,
) -> JSONResponse:
    """An `ErrorResponse` with `status` (`total`: see `error_body`)."""
    return JSONResponse(error_body(code, message, details, total=total), status_code=status)


async def _clipforge_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ClipForgeError)
    if exc.http_status >= 500:
        log.warning("request failed", extra={"code": exc.code, "error": str(exc)})
    response = error_response(exc.http_status, exc.code, str(exc) or exc.code)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    elif exc.http_status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def database_unavailable_response() -> JSONResponse:
    """503 `database_unavailable` with `Retry-After`."""
    response = error_response(
        503, "database_unavailable", "the database is unavailable; retry shortly"
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def unexpected_error_response(exc: BaseException) -> JSONResponse:
    """The answer to an exception no handler claimed: 503 for a database outage, else 500."""
    if dependency_of(exc) == "postgres":
        log.warning("database unavailable", extra={"error": repr(exc)})
        return database_unavailable_response()
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


async def _database_error(_: Request, exc: Exception) -> JSONResponse:
    return unexpected_error_response(exc)


def _jsonable(errors: list[Any]) -> list[Any]:
    # Pydantic puts the offending input and exception objects into `ctx`; keep what is JSON.
    cleaned: list[Any] = json.loads(json.dumps(errors, default=str))
    return cleaned


# FastAPI's answer when a JSON body is not even text (bad UTF-8 and the like).
_BODY_PARSE_DETAIL = "There was an error parsing the body"
MALFORMED_BODY = "malformed_json"

# Called before answering about a body that could not be parsed: raises `ClipForgeError` (401,
# 429) for a request that is not authenticated. FastAPI parses the body before it runs any
# dependency, so without this an anonymous caller would learn how its body parsed.
Authenticate = Callable[[Request], Awaitable[None]]


async def _malformed_body(request: Request, authenticate: Authenticate | None) -> JSONResponse:
    if authenticate is not None:
        try:
            await authenticate(request)
        except ClipForgeError as exc:
            return await _clipforge_error(request, exc)
    # One code for every body that is not parseable JSON, whatever layer noticed it.
    return error_response(400, MALFORMED_BODY, "request body is not valid JSON")


def _validation_error(authenticate: Authenticate | None) -> Handler:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return await _malformed_body(request, authenticate)
        # Only the details error_body keeps are converted.
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in errors[:MAX_ERROR_DETAILS]
        ]
        return error_response(
            422,
            "validation_error",
            "request is invalid",
            details=_jsonable(details),
            total=len(errors),
        )

    return handle


def _http_error(authenticate: Authenticate | None) -> Handler:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and exc.detail == _BODY_PARSE_DETAIL:
            return await _malformed_body(request, authenticate)
        code = {
            404: "not_found",
            405: "method_not_allowed",
            408: "request_timeout",
            413: "payload_too_large",
        }.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    return handle


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    return unexpected_error_response(exc)


def install_error_handlers(app: FastAPI, *, authenticate: Authenticate | None = None) -> None:
    """Register the handlers that turn every error into an `ErrorResponse`.

    `authenticate` runs before a malformed body is reported (see `Authenticate`).
    """
    app.add_exception_handler(ClipForgeError, _clipforge_error)
    app.add_exception_handler(RequestValidationError, _validation_error(authenticate))
    app.add_exception_handler(StarletteHTTPException, _http_error(authenticate))
    # Registered by class so they run inside RequestMiddleware (request id set), unlike the
    # catch-all below, which Starlette runs outermost.
    for db_error in (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError):
        app.add_exception_handler(db_error, _database_error)
    app.add_exception_handler(Exception, _unexpected)
