"""Error tracking with Sentry: unexpected errors only, once each, tagged, with secrets scrubbed.

`init_sentry` is the one set-up of every process that reports (API, worker, Serve replicas,
backfills); with `SENTRY_DSN` unset it does nothing. What gets reported:
- an `ERROR` log record (Sentry's logging integration): the API's "unhandled error" (a 500), a
  worker loop or after-commit step that failed. Expected failures never log at that level;
- a job that ended `dead` (retries spent on a failure that was not a dependency outage), by the
  queue runner on the driver (`report_job_failure`), once per job: not per attempt (a retry that
  succeeds was not an error for anyone) and never by the Ray actor too (actors turn failures
  into error rows; the driver alone decides a job's fate).
`before_send` drops expected failures that still reach it (bad media, validation, 4xx, a
dependency outage) and scrubs every string of the event, breadcrumbs included
(`clipforge.observability.scrub`), so nothing is scrubbed that is never sent.
Events carry `request_id`, `job_id`, `trace_id` (and per job `video_id`, `stage`) as tags, so
an event leads to the request's or job's logs and to its trace.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import sentry_sdk
from sentry_sdk.integrations import Integration
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

from clipforge.errors import ClipForgeError
from clipforge.logging import job_id_var, request_id_var
from clipforge.observability.scrub import EXTRA_DENYLIST, scrub_value
from clipforge.observability.tracing import log_ids
from clipforge.resilience import dependency_of, unwrap_ray_error

if TYPE_CHECKING:
    from sentry_sdk._types import Event, Hint

    from clipforge.settings import Settings

log = logging.getLogger(__name__)
_REPO = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=2)
def git_sha(configured: str | None = None) -> str | None:
    """The commit this code was built from: `configured` (CLIPFORGE_GIT_SHA, set at image
    build), else `git rev-parse` when running from a checkout, else None."""
    if configured and (sha := configured.strip()):
        return sha[:12]
    if not (_REPO / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(_REPO), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def release(configured_sha: str | None = None) -> str:
    """`clipforge@<version>+<sha>` (version only when the commit is unknown)."""
    from clipforge import __version__

    sha = git_sha(configured_sha)
    return f"clipforge@{__version__}+{sha}" if sha else f"clipforge@{__version__}"


def is_expected(exc: BaseException) -> bool:
    """Failures that are nobody's bug: bad input, a client error, a dependency outage."""
    exc = unwrap_ray_error(exc)
    if dependency_of(exc) is not None:
        return True
    if isinstance(exc, ClipForgeError):
        return exc.http_status < 500 or not exc.retryable
    status = getattr(exc, "status_code", None)  # Starlette/FastAPI HTTPException, duck-typed
    return isinstance(status, int) and status < 500


def _before_send(event: Event, hint: Hint) -> Event | None:
    exc_info = hint.get("exc_info") if hint else None
    if exc_info and exc_info[1] is not None and is_expected(exc_info[1]):
        return None
    scrubbed: Event = scrub_value(event)
    return scrubbed


def _tag_context(event: Event, _hint: Hint) -> Event:
    """Tags from the context the event was captured in (request, job, trace)."""
    tags = event.setdefault("tags", {})
    if (request_id := request_id_var.get()) is not None:
        tags.setdefault("request_id", request_id)
    if (job_id := job_id_var.get()) is not None:
        tags.setdefault("job_id", str(job_id))
    if (ids := log_ids()) is not None:
        tags.setdefault("trace_id", ids[0])
    return event


def init_sentry(
    settings: Settings, *, component: str, integrations: Sequence[Integration] = ()
) -> bool:
    """Start reporting to `SENTRY_DSN` (nothing when unset); returns whether it is on.

    Only the default integrations (logging, threads, excepthook, ...) and `integrations` are
    enabled: no auto-enabled framework integration, so the core never pulls FastAPI or Ray in
    and request bodies and headers are never attached. No Sentry tracing either (OpenTelemetry
    does that) and no trace headers on outgoing requests (S3, webhooks).
    """
    dsn = settings.sentry_dsn
    if dsn is None or not dsn.get_secret_value():
        return False
    sentry_sdk.init(
        dsn=dsn.get_secret_value(),
        release=release(settings.clipforge_git_sha),
        environment=settings.environment,
        send_default_pii=False,
        include_local_variables=True,
        event_scrubber=EventScrubber(denylist=[*DEFAULT_DENYLIST, *EXTRA_DENYLIST], recursive=True),
        before_send=_before_send,
        traces_sample_rate=None,
        trace_propagation_targets=[],
        auto_enabling_integrations=False,
        auto_session_tracking=False,
        integrations=list(integrations),
    )
    sentry_sdk.get_global_scope().add_event_processor(_tag_context)
    sentry_sdk.set_tag("component", component)
    log.info(
        "error tracking on",
        extra={"release": release(settings.clipforge_git_sha), "component": component},
    )
    return True


def report_job_failure(
    exc: BaseException,
    *,
    job_id: int,
    kind: str,
    stage: str,
    video_id: str | None,
    attempts: int,
    error: str,
) -> None:
    """Report a job that ended `dead` (no-op when Sentry is off or the failure is expected).

    A failure rebuilt from a stage actor's error value has no traceback of its own; the one the
    actor recorded travels as an exception note (`pipelines.stages.values.StageError`), which
    Sentry shows.
    """
    if not sentry_sdk.get_client().is_active() or is_expected(exc):
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("job_id", str(job_id))
        scope.set_tag("job_kind", kind)
        scope.set_tag("stage", stage)
        if video_id is not None:
            scope.set_tag("video_id", video_id)
        scope.set_context("job", {"attempts": attempts, "error": error})
        sentry_sdk.capture_exception(exc)


def flush(timeout_s: float = 2.0) -> None:
    """Send what is queued (before a short-lived process such as a backfill exits)."""
    if sentry_sdk.get_client().is_active():
        sentry_sdk.flush(timeout=timeout_s)
