"""Typed errors shared by every layer.

They are turned into HTTP responses in one place (the API's exception handlers) and into job
failures in one place (the queue worker). `retryable` tells the queue whether another attempt can
help: a network blip can, a corrupt file cannot.
"""

from __future__ import annotations

import re


class ClipForgeError(Exception):
    """Base class; `retryable` says whether the same operation may succeed if tried again."""

    retryable: bool = False
    http_status: int = 500
    code: str = "internal_error"

    def describe(self) -> str:
        """The reason recorded on a failed job: error type and message."""
        return f"{type(self).__name__}: {self}"


class ConfigError(ClipForgeError):
    """A setting is missing or invalid."""

    code = "config_error"


class ValidationFailed(ClipForgeError):
    """Input was rejected."""

    http_status = 422
    code = "validation_error"


class NotFound(ClipForgeError):
    """The resource does not exist (or belongs to another API key)."""

    http_status = 404
    code = "not_found"


class Conflict(ClipForgeError):
    """The request conflicts with the current state of the resource."""

    http_status = 409
    code = "conflict"


class MediaError(ClipForgeError):
    """Media is corrupt, empty, or lacks a required stream. Never retryable."""

    http_status = 422
    code = "invalid_media"


class TransientError(ClipForgeError):
    """A dependency failed in a way that another attempt may fix."""

    retryable = True
    http_status = 503
    code = "unavailable"


class DependencyUnavailable(TransientError):
    """A dependency (storage, database, cache, network) is down; not the job's or input's fault.

    The queue delays such a job without spending its attempts (see `QueueRunner`), and the API
    answers 503. `describe()` embeds the dependency as ``Type[dependency]: message`` so the
    classification survives being flattened to text (`jobs.last_error`); see
    `dependency_in_description`.
    """

    code = "dependency_unavailable"

    def __init__(self, message: str, *, dependency: str = "unknown") -> None:
        super().__init__(message)
        self.dependency = dependency if _DEPENDENCY_NAME.match(dependency) else "unknown"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments are lost by the default pickling (Ray ships errors pickled).
        return (_rebuild_dependency_error, (type(self), str(self), self.dependency))

    def describe(self) -> str:
        """``Type[dependency]: message``; parsed back by `dependency_in_description`."""
        return f"{type(self).__name__}[{self.dependency}]: {self}"


# What ffmpeg (and the C library under any tool) prints for ENOSPC and EDQUOT.
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded")


def disk_full_in(text: str) -> bool:
    """Whether a tool's error output says the disk (or the user's quota) is full."""
    return any(phrase in text for phrase in _DISK_FULL_TEXT)


def tool_failure(message: str, output: str) -> ClipForgeError:
    """The error for a media tool (ffmpeg) that failed with `output` on stderr.

    A full disk is the host's outage, not the input's fault: it becomes
    `DependencyUnavailable[disk]`, so the job waits for space instead of failing for good.
    Anything else is a `MediaError` (the input is bad; retrying cannot help).
    """
    if disk_full_in(output):
        return DependencyUnavailable(message, dependency="disk")
    return MediaError(message)


class CircuitOpen(DependencyUnavailable):
    """A circuit breaker refused the call because the dependency keeps failing."""


_DEPENDENCY_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,40}$")
_DESCRIBED = re.compile(r"^(DependencyUnavailable|CircuitOpen)\[([a-z0-9][a-z0-9_.-]{0,40})\]: ")


def _rebuild_dependency_error(
    cls: type[DependencyUnavailable], message: str, dependency: str
) -> DependencyUnavailable:
    return cls(message, dependency=dependency)


def dependency_in_description(description: str) -> str | None:
    """The dependency named by a `DependencyUnavailable.describe()` string, else None.

    For failures read back as text (`jobs.last_error`). Between processes (a stage actor and
    the driver) failures travel as typed values (`clipforge.resilience.RecordedFailure`).
    """
    match = _DESCRIBED.match(description)
    return match.group(2) if match else None


class LeaseLost(ClipForgeError):
    """The worker no longer holds the job's lease; another worker owns it now."""

    code = "lease_lost"
