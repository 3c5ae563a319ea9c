"""The HTTP server of `clipforge api`: uvicorn with limits on what a client may send before the
app sees a request.

uvicorn's httptools protocol has no limit on the size or number of header fields and no time
limit on sending them: a client could hold a worker with a header of many megabytes (httptools
joins a field's pieces by concatenation, so its cost grows faster than its size) or keep
thousands of connections open by sending one header byte a second. `GuardedHttpToolsProtocol`
adds those limits (`HeaderLimits`, from the settings) and answers 431 or 408 before closing the
connection. The Serve ingress checks the same sizes in `RequestMiddleware` (Serve's proxy runs
its own uvicorn); a proxy in front (cluster/nginx, ingress-nginx) enforces them on the way in.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from clipforge.settings import Settings, get_settings


@dataclass(frozen=True, slots=True)
class HeaderLimits:
    """What a request may send before its body.

    Attributes:
        max_bytes: request line plus header fields.
        max_fields: header fields.
        timeout_s: from a connection's start, or a request's first byte, to its last header.
    """

    max_bytes: int
    max_fields: int
    timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HeaderLimits:
        """The limits the settings name (API_MAX_HEADER_BYTES, ...)."""
        return cls(
            settings.api_max_header_bytes, settings.api_max_headers, settings.api_header_timeout_s
        )

    def refusal(self, size: int, fields: int) -> str | None:
        """Why headers of `size` bytes in `fields` fields are refused, or None."""
        if size > self.max_bytes:
            return f"request headers are over the {self.max_bytes}-byte limit"
        if fields > self.max_fields:
            return f"request has more than {self.max_fields} header fields"
        return None


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that is over a limit."""


def _answer(status: int, reason: bytes, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message, "request_id": None}}).encode()
    head = (
        f"HTTP/1.1 {status} ".encode()
        + reason
        + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
    )
    return head + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `HeaderLimits` (431 / 408, then the connection closes)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # Read here, not passed in: `--workers` processes rebuild the config from their own
        # environment, and get_settings() is cached per process.
        self.limits = HeaderLimits.from_settings(get_settings())
        self._reading_headers = True
        self._raw_header_bytes = 0  # bytes fed while the current header is unfinished
        self._header_bytes = 0  # parsed: URL and complete fields
        self._header_fields = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refused):
                self._refuse(431, b"Request Header Fields Too Large", str(exc.__context__))
                return
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._reading_headers:
            # An unfinished field never reaches on_header: count what arrived for it, so a
            # header that never ends is refused once it is too long, not kept in memory.
            self._raw_header_bytes += len(data)
            if self._raw_header_bytes > self.limits.max_bytes:
                message = self.limits.refusal(self._raw_header_bytes, 0) or ""
                self._refuse(431, b"Request Header Fields Too Large", message)

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = self._header_fields = 0
        self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        self._check()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        self._header_fields += 1
        self._check()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._raw_header_bytes = 0
        self._cancel_header_timer()
        super().on_headers_complete()

    # Limits
    def _check(self) -> None:
        message = self.limits.refusal(self._header_bytes, self._header_fields)
        if message is not None:
            raise _Refused(message)

    def _refuse(self, status: int, reason: bytes, message: str) -> None:
        self._refused = True
        self._cancel_header_timer()
        code = "headers_too_large" if status == 431 else "request_timeout"
        self.logger.warning("refused a request: %s", message)
        if not self.transport.is_closing():
            self.transport.write(_answer(status, reason, code, message))
            self.transport.close()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.limits.timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._reading_headers:
            message = f"request headers not received within {self.limits.timeout_s:g}s"
            self._refuse(408, b"Request Timeout", message)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """`uvicorn.run` keyword arguments for the limits of docs/operations.md, "API limits".

    Forwarded headers are handled in the app (`create_app`, API_TRUSTED_PROXY_CIDRS), the same
    under uvicorn and the Serve ingress, so uvicorn's own handling is off.
    """
    return {
        "http": GuardedHttpToolsProtocol,
        "timeout_keep_alive": settings.api_keepalive_timeout_s,
        "backlog": settings.api_backlog,
        "proxy_headers": False,
        "h11_max_incomplete_event_size": settings.api_max_header_bytes,
    }
