"""Per-request plumbing as one plain ASGI middleware: request id, header and body limits, access
log, Prometheus metrics by route template and status.

Plain ASGI rather than Starlette's `BaseHTTPMiddleware`, which runs the app in a separate task
and costs a noticeable share of a cheap request's time. The body limit is enforced twice: up
front from `Content-Length`, and while streaming for chunked bodies that do not declare one; a
client that pauses within a body longer than `BodyLimits.timeout_s` gets a 408. Header sizes are
checked here too, for the Serve ingress (whose proxy runs its own uvicorn); under `clipforge api`
the server refuses them before the app (`serve_apps.api.server`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clipforge.fetch import Network
from clipforge.logging import request_context
from clipforge.metrics import HTTP_LATENCY, HTTP_REQUESTS
from serve_apps.api.errors import error_response, unexpected_error_response
from serve_apps.api.server import HeaderLimits

log = logging.getLogger("clipforge.api.access")

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_QUIET_ROUTES = {"/health", "/ready", "/metrics"}

Observer = Callable[[str, str, int, float], None]
Header = tuple[bytes, bytes]
# Two years, the preload list's minimum; only sent on answers that came over HTTPS.
HSTS = "max-age=63072000; includeSubDomains"


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """Largest request body per route family, in bytes.

    Attributes:
        default: JSON requests.
        direct_upload: `POST /v1/videos/upload` (small files; large ones use presigned URLs).
        model_upload: `POST /v1/models/asr`.
        timeout_s: longest wait for the next part of a body.
    """

    default: int
    direct_upload: int
    model_upload: int
    timeout_s: float = 30.0

    def for_path(self, path: str) -> int:
        """The limit of the route at `path`."""
        if path == "/v1/videos/upload":
            return self.direct_upload
        if path == "/v1/models/asr":
            return self.model_upload
        return self.default


class RequestMiddleware:
    """Wraps the app: ids, limits, logs, metrics."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: BodyLimits,
        header_limits: HeaderLimits | None = None,
        observers: tuple[Observer, ...] = (),
        trusted_proxies: tuple[Network, ...] = (),
    ):
        self.app = app
        self.limits = limits
        self.header_limits = header_limits
        self.observers = observers
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        with request_context(request_id):
            await self._handle(scope, receive, send, request_id)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        started = time.perf_counter()
        limit = self.limits.for_path(scope["path"])
        status = 500
        started_response = False

        extra_headers = [(REQUEST_ID_HEADER.lower().encode(), request_id.encode())]
        extra_headers += _security_headers(scope, self.trusted_proxies)

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = int(message["status"])
                headers = list(message.get("headers", []))
                present = {bytes(name).lower() for name, _ in headers}
                headers += [(k, v) for k, v in extra_headers if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        try:
            refusal = _header_refusal(scope, self.header_limits)
            if refusal is not None:
                response = error_response(431, "headers_too_large", refusal)
                response.headers["Connection"] = "close"
                await response(scope, receive, send_with_id)
                return
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                response = error_response(
                    413, "payload_too_large", f"request body is over the {limit}-byte limit"
                )
                await response(scope, receive, send_with_id)
                return
            try:
                await self.app(scope, _limited(receive, limit, self.limits.timeout_s), send_with_id)
            except Exception as exc:
                # Answer here rather than in Starlette's outermost handler, so the error still
                # carries the request id (header and body); a started response cannot change.
                if started_response:
                    raise
                await unexpected_error_response(exc)(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        method = scope["method"]
        HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
        HTTP_LATENCY.labels(route=route, method=method).observe(seconds)
        for observe in self.observers:
            observe(route, method, status, seconds)
        if route not in _QUIET_ROUTES or status >= 500:
            log.info(
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "api_key_id": (scope.get("state") or {}).get("api_key_id"),
                },
            )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def served_over_tls(scope: Scope, trusted_proxies: tuple[Network, ...]) -> bool:
    """Whether the client reached us over HTTPS: directly, or via a proxy we trust to say so."""
    if scope.get("scheme") == "https":
        return True
    forwarded = (_header(scope, b"x-forwarded-proto") or "").split(",")[0].strip().lower()
    if forwarded != "https":
        return False
    client = scope.get("client")
    try:
        peer = ipaddress.ip_address(client[0]) if client else None
    except ValueError:  # not an IP address (a test transport, a unix socket)
        return False
    return peer is not None and any(peer in net for net in trusted_proxies)


def _security_headers(scope: Scope, trusted_proxies: tuple[Network, ...]) -> list[Header]:
    # nosniff everywhere: error bodies echo client input, and a browser must not guess HTML.
    headers: list[Header] = [(b"x-content-type-options", b"nosniff")]
    if scope["path"].startswith("/v1/"):
        # API answers are per key and some carry secrets (a webhook's signing secret): no
        # shared or browser cache may keep them. A route that sets its own policy keeps it.
        headers.append((b"cache-control", b"no-store"))
    if served_over_tls(scope, trusted_proxies):
        headers.append((b"strict-transport-security", HSTS.encode()))
    return headers


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = bytes(value).decode("latin-1")
            if _VALID_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _header_refusal(scope: Scope, limits: HeaderLimits | None) -> str | None:
    if limits is None:
        return None
    headers = scope.get("headers", [])
    size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    size += sum(len(name) + len(value) + 4 for name, value in headers)
    return limits.refusal(size, len(headers))


def _limited(receive: Receive, limit: int, timeout_s: float) -> Receive:
    received = 0
    body_done = False

    async def wrapped() -> Message:
        nonlocal received, body_done
        if body_done:  # after the body, receive() waits for a disconnect: no limit on that
            return await receive()
        try:
            # asyncio.timeout, not wait_for: no extra task per receive on the hot path.
            async with asyncio.timeout(timeout_s):
                message = await receive()
        except TimeoutError:
            raise HTTPException(
                408,
                f"no part of the request body arrived within {timeout_s:g}s",
                headers={"Connection": "close"},
            ) from None
        body_done = message["type"] != "http.request" or not message.get("more_body", False)
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                # Raised inside body parsing; the error handlers turn it into a 413 response.
                raise HTTPException(413, f"request body is over the {limit}-byte limit")
        return message

    return wrapped
