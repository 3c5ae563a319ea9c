"""The OpenTelemetry SDK side of `tracing`, imported only once tracing is switched on.

Kept apart so a process with tracing off (the embedded `clipforge process`, an API without
OTEL_* variables) never loads the SDK or an exporter.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from clipforge.errors import ConfigError
from clipforge.observability.tracing import SpanRecord


def exporters_from_env() -> list[SpanExporter]:
    """The exporters `OTEL_TRACES_EXPORTER` names (default `otlp`, over HTTP/protobuf)."""
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    exporters: list[SpanExporter] = []
    for name in (n.strip() for n in names.split(",")):
        if name == "otlp":
            protocol = os.environ.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            )
            if protocol != "http/protobuf":
                raise ConfigError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only http/protobuf is installed"
                    " (point it at the collector's 4318 port)"
                )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())  # endpoint, headers, timeout: OTEL_* variables
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif name != "none":
            raise ConfigError(f"OTEL_TRACES_EXPORTER={name!r}: use otlp, console or none")
    return exporters


def _resource(service_name: str) -> Resource:
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over our default name.
    if os.environ.get("OTEL_SERVICE_NAME"):
        return Resource.create()
    return Resource.create({"service.name": service_name})


def build_provider(
    service_name: str, exporters: Sequence[SpanExporter], *, batch: bool
) -> tuple[TracerProvider, list[SpanProcessor]]:
    """A provider exporting to `exporters` (batched, or each span as it ends)."""
    provider = TracerProvider(resource=_resource(service_name))
    processors: list[SpanProcessor] = [
        BatchSpanProcessor(e) if batch else SimpleSpanProcessor(e) for e in exporters
    ]
    for processor in processors:
        provider.add_span_processor(processor)
    return provider, processors


class Collector(SpanProcessor):
    """Keeps finished spans in memory until the call that made them returns."""

    def __init__(self) -> None:
        self._spans: list[ReadableSpan] = []
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self._spans.append(span)

    def drain(self, trace_id: int) -> list[SpanRecord]:
        """The spans of `trace_id`; every other buffered span (e.g. a thread's root span that
        lost its context) is dropped, so the buffer never grows across calls."""
        with self._lock:
            spans, self._spans = self._spans, []
        return [
            _record(s) for s in spans if s.context is not None and s.context.trace_id == trace_id
        ]


def _record(s: ReadableSpan) -> SpanRecord:
    assert s.context is not None
    return {
        "name": s.name,
        "trace_id": s.context.trace_id,
        "span_id": s.context.span_id,
        "parent_id": s.parent.span_id if s.parent is not None else None,
        "kind": s.kind.value,
        "start": s.start_time or 0,
        "end": s.end_time or 0,
        "attributes": dict(s.attributes or {}),
        "status": s.status.status_code.value,
        "description": s.status.description,
        "events": [(e.name, e.timestamp, dict(e.attributes or {})) for e in s.events],
        "pid": os.getpid(),
    }


def build_collector(service_name: str) -> tuple[TracerProvider, Collector]:
    """A provider that only collects finished spans in memory (inside a Ray actor)."""
    collector = Collector()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(collector)
    return provider, collector


def rebuild(records: Sequence[SpanRecord], resource: Resource) -> list[ReadableSpan]:
    """Finished SDK spans from another process's records, with `resource` plus its pid."""
    scope = InstrumentationScope("clipforge.actor")
    flags = TraceFlags(TraceFlags.SAMPLED)
    spans: list[ReadableSpan] = []
    for r in records:
        parent = r["parent_id"]
        spans.append(
            ReadableSpan(
                name=r["name"],
                context=SpanContext(
                    r["trace_id"], r["span_id"], is_remote=False, trace_flags=flags
                ),
                parent=(
                    SpanContext(r["trace_id"], parent, is_remote=True, trace_flags=flags)
                    if parent is not None
                    else None
                ),
                resource=resource.merge(
                    Resource({"process.pid": r["pid"], "clipforge.process": "stage-actor"})
                ),
                attributes=r["attributes"],
                events=[Event(name, attrs, ts) for name, ts, attrs in r["events"]],
                kind=SpanKind(r["kind"]),
                status=Status(StatusCode(r["status"]), r["description"]),
                start_time=r["start"],
                end_time=r["end"],
                instrumentation_scope=scope,
            )
        )
    return spans
