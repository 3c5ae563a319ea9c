"""Circuit breakers and outage classification.

Retries live with what they retry: the job queue's backoff (`clipforge.queue.backoff`), the HTTP
client's (`clipforge.client`), boto3's own. The breaker stops a hard outage from turning every
request into a slow timeout: after `failure_threshold` consecutive failures it fails fast for
`reset_after_s`, then lets one trial call through (half-open) to see whether the dependency is
back.

`dependency_of` is the one place that decides whether an exception means "a dependency is down"
(the job is not at fault: the queue delays it without spending attempts, the API answers 503)
rather than "this input or code failed". A full disk counts as one (dependency `disk`): ENOSPC or
EDQUOT from the OS, or in a tool's (ffmpeg's) error output. The input is fine; the host is not.
"""

from __future__ import annotations

import errno
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from psycopg_pool import PoolTimeout

from clipforge.errors import (
    CircuitOpen,
    ClipForgeError,
    DependencyUnavailable,
    disk_full_in,
)
from clipforge.metrics import BREAKER_STATE

log = logging.getLogger(__name__)
T = TypeVar("T")


class CircuitBreaker:
    """Thread-safe closed / open / half-open breaker."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_after_s: float = 10.0,
        is_failure: Callable[[Exception], bool] = lambda exc: True,
    ) -> None:
        self.name = name
        # Errors that say nothing about the dependency's health (a 404, say) don't trip it.
        self.is_failure = is_failure
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self._lock = threading.Lock()
        BREAKER_STATE.labels(breaker=name).set(0)

    @property
    def state(self) -> str:
        """`closed`, `open` or `half-open`."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if time.monotonic() - self._opened_at >= self.reset_after_s:
                return "half-open"
            return "open"

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` through the breaker; raise `CircuitOpen` without calling it while open."""
        self._before()
        try:
            result = fn()
        except Exception as exc:
            if self.is_failure(exc):
                self._on_failure()
            else:
                self._on_success()
            raise
        self._on_success()
        return result

    def reset(self) -> None:
        """Close the breaker: a health probe saw the dependency answer."""
        self._on_success()

    def _before(self) -> None:
        with self._lock:
            if self._opened_at is None:
                return
            cooled = time.monotonic() - self._opened_at >= self.reset_after_s
            if cooled and not self._trial_in_flight:
                self._trial_in_flight = True  # exactly one probe call while half-open
                return
            raise CircuitOpen(f"{self.name} is unavailable (circuit open)", dependency=self.name)

    def _on_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_in_flight = False
            if self._opened_at is not None or self._failures >= self.failure_threshold:
                if self._opened_at is None:
                    log.warning("circuit opened", extra={"breaker": self.name})
                self._opened_at = time.monotonic()
                BREAKER_STATE.labels(breaker=self.name).set(1)

    def _on_success(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                log.info("circuit closed", extra={"breaker": self.name})
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False
            BREAKER_STATE.labels(breaker=self.name).set(0)


class OutageLog:
    """One log line when a dependency goes away and one when it is back, however often it is
    seen failing in between (a loop retrying every second must not log every second)."""

    def __init__(self, logger: logging.Logger, *, down: str, up: str) -> None:
        """`down` and `up` are the two messages; ``{dependency}`` in them names it."""
        self._log = logger
        self._down = down
        self._up = up
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()

    def down(self, dependency: str, exc: BaseException) -> bool:
        """Record a failure caused by `dependency`; logs (and returns True) only the first."""
        with self._lock:
            if dependency in self._since:
                return False
            self._since[dependency] = time.monotonic()
        self._log.warning(
            self._down.format(dependency=dependency),
            extra={"dependency": dependency, "error": repr(exc)},
        )
        return True

    def up(self, dependency: str) -> float | None:
        """Record a success; logs once (and returns the outage's length) if it was down."""
        with self._lock:
            since = self._since.pop(dependency, None)
        if since is None:
            return None
        down_s = time.monotonic() - since
        self._log.info(
            self._up.format(dependency=dependency),
            extra={"dependency": dependency, "down_s": round(down_s, 1)},
        )
        return down_s

    def is_down(self, dependency: str) -> bool:
        """Whether `dependency` is currently recorded as away."""
        with self._lock:
            return dependency in self._since


# SQLSTATE classes that mean "this configuration can never connect": invalid authorization
# (28xxx) and a database that does not exist (3D000). Retrying them only hides the mistake.
_FATAL_SQLSTATE_PREFIXES = ("28", "3D")


def is_fatal_db_error(exc: BaseException) -> bool:
    """True for database errors no retry can fix: bad credentials, missing database, bad DSN."""
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate or ""
        return state.startswith(_FATAL_SQLSTATE_PREFIXES)
    # Raised before any server answered (a malformed DSN): no SQLSTATE.
    return isinstance(exc, psycopg.ProgrammingError) and exc.sqlstate is None


def _redis_errors() -> tuple[type[BaseException], ...]:
    """Redis's unreachable-server errors, once redis is loaded. An exception of its types cannot
    exist before, so the processes that never talk to Redis (every stage actor) are spared
    importing it: about 0.1 s of each actor's start."""
    module = sys.modules.get("redis.exceptions")
    if module is None:
        return ()
    errors: tuple[type[BaseException], ...] = (module.ConnectionError, module.TimeoutError)
    return errors


def _library_dependency(exc: BaseException) -> str | None:
    """The dependency a third-party (or builtin) exception reports as unreachable, if any."""
    if isinstance(exc, PoolTimeout | psycopg.InterfaceError):
        return "postgres"
    if isinstance(exc, psycopg.OperationalError):
        # A statement timeout is the query's own fault far more often than an outage.
        if isinstance(exc, psycopg.errors.QueryCanceled) or is_fatal_db_error(exc):
            return None
        return "postgres"
    if isinstance(exc, _redis_errors()):
        return "redis"
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return "s3"
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return "s3" if status >= 500 else None
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return "disk"
    if isinstance(exc, ConnectionError | TimeoutError):
        return "network"
    return None


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def unwrap_ray_error(exc: BaseException) -> BaseException:
    """The original exception inside Ray's `RayTaskError` (possibly dual-classed as the
    cause's type), else `exc` itself. Duck-typed so this module does not import Ray."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and type(exc).__name__.startswith("RayTaskError"):
        return unwrap_ray_error(cause)
    return exc


def dependency_of(exc: BaseException) -> str | None:
    """The name of the dependency whose outage caused `exc`, or None if `exc` is not an outage.

    Recognises `DependencyUnavailable` (and `CircuitOpen`), the libraries' own connection
    errors (psycopg, psycopg_pool, redis, botocore, builtin connection errors and timeouts),
    the same behind `raise ... from` chains and inside Ray's `RayTaskError` (its `.cause`), and
    a `RecordedFailure` (classified where it was raised, in a stage actor) by its `Failure`.
    Our own typed errors are taken at their word: a `TransientError` raised for a failing
    source URL says the input's server failed, so its causes are not searched.
    """
    todo: list[BaseException] = [exc]
    seen: set[int] = set()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        unwrapped = unwrap_ray_error(current)
        if unwrapped is not current:
            todo.append(unwrapped)
            continue
        if isinstance(current, RecordedFailure):
            return current.failure.dependency
        if isinstance(current, DependencyUnavailable):
            return current.dependency
        if isinstance(current, ClipForgeError):
            if disk_full_in(current.describe()):  # a tool's ENOSPC carried in a message
                return "disk"
            continue
        found = _library_dependency(current)
        if found is not None:
            return found
        if current.__cause__ is not None:
            todo.append(current.__cause__)
    return None


@dataclass(frozen=True, slots=True)
class Failure:
    """How a job's failure is recorded and retried.

    Attributes:
        error: ``Type: message`` (``Type[dependency]: message`` for outages) for `last_error`.
        retryable: whether another attempt may help.
        dependency: the unavailable dependency, or None when the job itself failed.
    """

    error: str
    retryable: bool
    dependency: str | None


def classify_failure(exc: BaseException) -> Failure:
    """Classify any exception a job raised (or a Ray task returned) for the queue.

    Unknown exceptions are retryable: most are transient, and `max_attempts` bounds a bug. A
    `RecordedFailure` keeps the classification it was made with.
    """
    exc = unwrap_ray_error(exc)
    if isinstance(exc, RecordedFailure):
        return exc.failure
    dependency = dependency_of(exc)
    if dependency is not None:
        if isinstance(exc, DependencyUnavailable):
            error = exc.describe()
        else:
            error = DependencyUnavailable(
                f"{type(exc).__name__}: {exc}", dependency=dependency
            ).describe()
        return Failure(error=error, retryable=True, dependency=dependency)
    if isinstance(exc, ClipForgeError):
        return Failure(error=exc.describe(), retryable=exc.retryable, dependency=None)
    return Failure(error=f"{type(exc).__name__}: {exc}", retryable=True, dependency=None)


class RecordedFailure(ClipForgeError):
    """A job failure classified in another process (a stage actor) and rebuilt here from its
    `Failure` value: `classify_failure` and `dependency_of` read the value, never its text, so
    an outage stays an outage and a bad input stays final across the process boundary."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.error)
        self.failure = failure
        self.retryable = failure.retryable

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.failure,))

    def describe(self) -> str:
        """The original error's own description (`Failure.error`), without this wrapper."""
        return self.failure.error
