"""One call per process: error tracking and tracing, each on only if configured."""

from __future__ import annotations

from clipforge.observability.tracing import configure_tracing
from clipforge.settings import Settings


def init_observability(settings: Settings, component: str) -> tuple[bool, bool]:
    """Start Sentry (`SENTRY_DSN`) and tracing (`OTEL_*`) for `component` (`api`, `worker`,
    `serve-asr`, `backfill`, ...); returns whether each is on. Without either, neither the
    Sentry SDK nor the OpenTelemetry SDK is even imported."""
    sentry_on = False
    if settings.sentry_dsn is not None and settings.sentry_dsn.get_secret_value():
        from clipforge.observability.sentry import init_sentry

        sentry_on = init_sentry(settings, component=component)
    return sentry_on, configure_tracing(f"clipforge-{component}")
