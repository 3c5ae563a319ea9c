"""OpenTelemetry tracing: one trace from an API request through every job and hop it caused.

Off unless the standard variables ask for it (`OTEL_TRACES_EXPORTER`, or
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true`
wins). While off, `span()` is a no-op and nothing is stored with jobs, so the embedded
`clipforge process` run pays nothing. The provider is this module's own, not OpenTelemetry's
global one: a process (or a test) can install and remove it without the global's set-once rule.

How a trace crosses the hops:
- the API's request span is current while a handler enqueues, so `jobs.enqueue` stores its
  W3C `traceparent` with the job (`current_traceparent`);
- the worker's runner starts a job span under that stored context when it claims the job
  (`start_job_span`) and registers it by job id, because the stage's batch runs on other
  threads and per job; the commit span (and so the next stage's enqueue) sits under it;
- a Ray actor call gets a driver-side hop span, and its `traceparent` travels with the call.
  The actor process records its own spans (ffmpeg, storage) with a collecting provider
  (`start_remote_collection`) and returns them as plain records in its report; the driver
  re-emits them through its exporters (`ingest`). So actors need no exporter, no network path
  to a collector and no OTEL_* environment of their own, and their spans are not lost when the
  actor's process is killed between an export batch and the next.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from clipforge.observability.scrub import scrub_text

if TYPE_CHECKING:  # the SDK loads only when tracing is switched on (`sdk`)
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from clipforge.observability.sdk import Collector

__all__ = [
    "Hop",
    "Span",
    "SpanKind",
    "SpanRecord",
    "Status",
    "StatusCode",
    "configure_tracing",
    "context_from",
    "current_traceparent",
    "enabled",
    "end_job_span",
    "ingest",
    "job_scope",
    "log_ids",
    "remote_span",
    "set_outcome",
    "shutdown_tracing",
    "span",
    "start_hop",
    "start_job_span",
]

_PROPAGATOR = TraceContextTextMapPropagator()
_SCOPE = "clipforge"
_NOOP = trace.NoOpTracer()


@dataclass
class _State:
    provider: TracerProvider | None = None
    tracer: trace.Tracer = _NOOP
    # Processors of the driver's provider: `ingest` hands actors' spans to the same ones.
    processors: list[SpanProcessor] = field(default_factory=list)
    collector: Collector | None = None


_state = _State()
_jobs: dict[int, Span] = {}
_jobs_lock = threading.Lock()


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def tracing_requested() -> bool:
    """Whether the standard OTEL_* variables ask this process to export traces."""
    if _truthy("OTEL_SDK_DISABLED"):
        return False
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_tracing(
    service_name: str, *, exporter: SpanExporter | None = None, batch: bool = True
) -> bool:
    """Install this process's tracer provider if OTEL_* asks for it (or `exporter` is given).

    Returns whether tracing is on. `exporter` (tests: the SDK's in-memory exporter) replaces
    the exporters from the environment; `batch=False` exports each span as it ends.
    """
    if exporter is None and not tracing_requested():
        return enabled()
    from clipforge.observability import sdk

    exporters = [exporter] if exporter is not None else sdk.exporters_from_env()
    shutdown_tracing()
    provider, processors = sdk.build_provider(service_name, exporters, batch=batch)
    _state.provider, _state.processors = provider, processors
    _state.tracer = provider.get_tracer(_SCOPE)
    return True


def shutdown_tracing() -> None:
    """Flush and remove the provider (tests; the end of a process)."""
    provider, _state.provider = _state.provider, None
    _state.tracer, _state.processors, _state.collector = _NOOP, [], None
    with _jobs_lock:
        _jobs.clear()
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    """Whether spans are recorded in this process."""
    return _state.provider is not None


def tracer() -> trace.Tracer:
    """The process's tracer (a no-op one while tracing is off)."""
    return _state.tracer


@contextlib.contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    context: Context | None = None,
) -> Iterator[Span | None]:
    """A current span around the block (None, and no work at all, while tracing is off).

    An exception leaving the block is recorded on the span and marks it as an error.
    """
    if not enabled():
        yield None
        return
    with _state.tracer.start_as_current_span(
        name, context=context, kind=kind, attributes=_attributes(attributes)
    ) as current:
        yield current


def _attributes(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenTelemetry takes str, bool, int, float (and lists of them); the rest becomes text."""
    out: dict[str, Any] = {}
    for key, value in (values or {}).items():
        if value is None:
            continue
        out[key] = value if isinstance(value, str | bool | int | float) else str(value)
    return out


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, or None (no valid span: tracing off)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_from(headers: Mapping[str, str]) -> Context:
    """The context a W3C `traceparent` (and `tracestate`) in `headers` continues; empty if none
    or malformed (a new trace then starts)."""
    return _PROPAGATOR.extract(headers)


def log_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current span in W3C hex, for log lines; None without one."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)


# --- job spans: one per claimed job, found by job id from the threads that run its batch ----


def start_job_span(
    job_id: int,
    name: str,
    traceparent: str | None,
    *,
    claim_ns: tuple[int, int],
    attributes: Mapping[str, Any],
) -> None:
    """Start the span of a claimed job, under the context stored with it, with a child
    `queue.claim` span covering the claim query (`claim_ns`: its start and end)."""
    if not enabled():
        return
    parent = context_from({"traceparent": traceparent}) if traceparent else None
    job = _state.tracer.start_span(
        name,
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=_attributes(attributes),
        start_time=claim_ns[0],
    )
    claim = _state.tracer.start_span(
        "queue.claim", context=trace.set_span_in_context(job), start_time=claim_ns[0]
    )
    claim.end(end_time=claim_ns[1])
    with _jobs_lock:
        _jobs[job_id] = job


@dataclass
class Hop:
    """Driver-side spans of one call into another process, one per job the call serves (a
    transcribe call may carry parts of several videos); the first one's context travels."""

    spans: list[Span]
    carrier: dict[str, str]

    def end(self, *, error: str | None = None) -> None:
        """End every span of the hop; `error` (scrubbed) marks them failed."""
        for hop in self.spans:
            if error is not None:
                hop.set_status(Status(StatusCode.ERROR, scrub_text(error)[:500]))
            hop.end()


def start_hop(name: str, job_ids: Sequence[int], attributes: Mapping[str, Any]) -> Hop | None:
    """Start a hop under the spans of the running jobs `job_ids` (None: tracing off or no job
    span to continue)."""
    if not enabled():
        return None
    with _jobs_lock:
        parents = [_jobs[j] for j in job_ids if j in _jobs]
    if not parents:
        return None
    values = _attributes(attributes) | {"clipforge.hop.jobs": len(parents)}
    spans = [
        _state.tracer.start_span(
            name, context=trace.set_span_in_context(p), kind=SpanKind.CLIENT, attributes=values
        )
        for p in parents
    ]
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(spans[0]))
    return Hop(spans, carrier)


@contextlib.contextmanager
def job_scope(job_id: int) -> Iterator[None]:
    """Make the job's span current in the block (log lines, the commit span, the next stage's
    enqueue) and end it when the block ends."""
    with _jobs_lock:
        job = _jobs.pop(job_id, None)
    if job is None:
        yield
        return
    with trace.use_span(job, end_on_exit=True):
        yield


def set_outcome(outcome: str, *, error: str | None = None) -> None:
    """Record how the current job ended on its span; `error` (scrubbed) marks it failed."""
    if not enabled():
        return
    current = trace.get_current_span()
    current.set_attribute("clipforge.job.outcome", outcome)
    if error is not None:
        current.set_status(Status(StatusCode.ERROR, scrub_text(error)[:500]))


def end_job_span(job_id: int, *, outcome: str) -> None:
    """End and forget the span of a job that is not run after all (released on shutdown)."""
    with _jobs_lock:
        job = _jobs.pop(job_id, None)
    if job is not None:
        job.set_attribute("clipforge.job.outcome", outcome)
        job.end()


# --- spans recorded in other processes (Ray actors), shipped back as plain records -----------


class SpanRecord(TypedDict):
    """A finished span as plain data (picklable, no SDK objects)."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    kind: int
    start: int
    end: int
    attributes: dict[str, Any]
    status: int
    description: str | None
    events: list[tuple[str, int, dict[str, Any]]]
    pid: int


def start_remote_collection() -> None:
    """In a Ray actor: record spans into memory, to be returned to the driver (idempotent)."""
    if _state.collector is not None:
        return
    from clipforge.observability import sdk

    provider, collector = sdk.build_collector("clipforge-stage-actor")
    _state.provider, _state.collector = provider, collector
    _state.tracer = provider.get_tracer(_SCOPE)


@contextlib.contextmanager
def remote_span(
    name: str, carrier: Mapping[str, str], attributes: Mapping[str, Any] | None = None
) -> Iterator[list[SpanRecord]]:
    """In a Ray actor: a span under the driver's hop span (`carrier`); the list it yields is
    filled, when the block ends, with the records of every span the call finished."""
    start_remote_collection()
    collector = _state.collector
    assert collector is not None
    records: list[SpanRecord] = []
    with span(name, attributes, context=context_from(carrier)) as current:
        trace_id = current.get_span_context().trace_id if current is not None else 0
        yield records
    records.extend(collector.drain(trace_id))


def ingest(records: Sequence[SpanRecord]) -> None:
    """Export spans another process recorded through this process's span processors."""
    if not records or not _state.processors or _state.provider is None:
        return
    from clipforge.observability import sdk

    for finished in sdk.rebuild(records, _state.provider.resource):
        for processor in _state.processors:
            processor.on_end(finished)
