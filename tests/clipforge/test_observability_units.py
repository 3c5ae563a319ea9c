"""Observability units: secret shapes the error-report scrubber must catch (and text it must
leave alone), which failures count as expected, and tracing switched on by the standard OTEL_*
variables exporting over OTLP/HTTP to a local collector stand-in."""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from clipforge.errors import DependencyUnavailable, MediaError, ValidationFailed
from clipforge.observability import tracing
from clipforge.observability.scrub import FILTERED, scrub_text, scrub_value
from clipforge.observability.sentry import is_expected
from clipforge.resilience import Failure, RecordedFailure


def test_secrets_are_replaced_wherever_they_appear() -> None:
    key = "cf_" + secrets.token_urlsafe(32)
    hook = "whsec_" + secrets.token_urlsafe(32)
    signature = secrets.token_hex(32)
    cases = {
        f"Authorization: Bearer {key}": [key],
        f"(b'authorization', b'Bearer {key}')": [key],
        "{'authorization': 'Basic dXNlcjpwYXNz'}": ["dXNlcjpwYXNz"],
        f"looked up {key[:30]}": [key[:30]],  # cut short by truncation
        f"secret={hook}": [hook],
        f"t=1700000000,v1={signature}": [signature],
        (
            "https://b.s3.amazonaws.com/k.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential=AKIAEXAMPLE%2F20261201%2Fus-east-1&X-Amz-Signature={signature}"
        ): [signature, "AKIAEXAMPLE"],
        "postgresql://clip:hunter2@db:5432/clipforge": ["hunter2"],
        "redis://:s3cr3t-pw@cache:6379/0": ["s3cr3t-pw"],
        "host=db user=clip password=hunter2 dbname=clipforge": ["hunter2"],
    }
    for text, hidden in cases.items():
        scrubbed = scrub_text(text)
        assert FILTERED in scrubbed, text
        for secret in hidden:
            assert secret not in scrubbed, (text, scrubbed)
    nested = scrub_value({"frames": [{"vars": {"url": f"x?X-Amz-Signature={signature}"}}]})
    assert signature not in str(nested)


def test_ordinary_text_is_left_alone() -> None:
    for text in (
        "user=root dbname=cf_test_0123456789ab host=127.0.0.1",
        "videos/1b9d6bcd/exports/abc.mp4",
        "ffmpeg render failed: Invalid data found when processing input",
        "postgresql://root@127.0.0.1:5432/postgres",
    ):
        assert scrub_text(text) == text


def test_expected_failures_are_not_reported() -> None:
    assert is_expected(MediaError("corrupt"))
    assert is_expected(ValidationFailed("bad"))
    assert is_expected(DependencyUnavailable("down", dependency="s3"))
    assert is_expected(RecordedFailure(Failure("MediaError: corrupt", False, None)))
    assert not is_expected(RecordedFailure(Failure("KeyError: 'words'", True, None)))
    assert not is_expected(ValueError("cannot convert float NaN to integer"))


def test_otel_variables_switch_tracing_on_and_export_over_otlp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: list[tuple[str, str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append((self.path, self.headers.get("Content-Type", ""), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert not tracing.configure_tracing("clipforge-test")  # nothing set: off
    assert tracing.current_traceparent() is None
    with ThreadingHTTPServer(("127.0.0.1", 0), Collector) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        monkeypatch.setenv(
            "OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}"
        )
        try:
            assert tracing.configure_tracing("clipforge-test")
            with tracing.span("unit.work", {"clipforge.job.id": 7}):
                parent = tracing.current_traceparent()
                assert parent is not None and re.fullmatch(
                    r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[13]", parent
                )
        finally:
            tracing.shutdown_tracing()  # flushes the batch
            server.shutdown()
    assert [(path, kind) for path, kind, _ in received] == [
        ("/v1/traces", "application/x-protobuf")
    ]
    assert b"unit.work" in received[0][2] and b"clipforge-test" in received[0][2]
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.configure_tracing("clipforge-test")


def test_log_lines_carry_the_current_span() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from clipforge.logging import JsonFormatter

    def line() -> dict[str, object]:
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", None, None)
        parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
        return parsed

    assert "trace_id" not in line()
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("clipforge-test", exporter=exporter, batch=False)
    try:
        with tracing.span("work"):
            inside = line()
    finally:
        tracing.shutdown_tracing()
    (finished,) = exporter.get_finished_spans()
    assert finished.context is not None
    assert inside["trace_id"] == f"{finished.context.trace_id:032x}"
    assert inside["span_id"] == f"{finished.context.span_id:016x}"
    assert "trace_id" not in line()
