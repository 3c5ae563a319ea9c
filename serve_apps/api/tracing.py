"""A span per API request (plain ASGI, like `RequestMiddleware`), continuing the client's trace.

A W3C `traceparent` sent by the client becomes the span's parent. The span is current while the
handler runs, so a job the request enqueues stores its context and the worker's spans join the
same trace; `RequestMiddleware` runs inside it, so its access log line carries the trace id.
With tracing off (`clipforge.observability.tracing`), requests pass straight through.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clipforge.observability import tracing

_PROPAGATED = (b"traceparent", b"tracestate")


class TracingMiddleware:
    """Wraps the app in a server span named after the route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not tracing.enabled():
            await self.app(scope, receive, send)
            return
        carrier = {
            bytes(k).decode("latin-1"): bytes(v).decode("latin-1")
            for k, v in scope.get("headers", [])
            if k in _PROPAGATED
        }
        method = scope["method"]
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    if bytes(name).lower() == b"x-request-id" and current is not None:
                        current.set_attribute("clipforge.request.id", bytes(value).decode())
            await send(message)

        attributes = {"http.request.method": method, "url.path": scope["path"]}
        with tracing.span(
            method,
            attributes,
            kind=tracing.SpanKind.SERVER,
            context=tracing.context_from(carrier),
        ) as current:
            try:
                await self.app(scope, receive, send_status)
            finally:
                if current is not None:
                    route = getattr(scope.get("route"), "path", None)
                    if route:
                        current.update_name(f"{method} {route}")
                        current.set_attribute("http.route", route)
                    current.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        current.set_status(tracing.Status(tracing.StatusCode.ERROR))
