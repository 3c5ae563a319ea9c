"""Error tracking (Sentry) and tracing (OpenTelemetry), both off unless configured.

`sentry` reports unexpected errors with secrets scrubbed (`scrub`); `tracing` keeps one trace
from an API request through every job it caused, across the queue and the Ray actors. Neither
imports Ray or FastAPI: the API and the stage actors wire them in from their own packages.
"""
