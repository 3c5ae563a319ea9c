"""Typed errors shared by every layer.

They are turned into HTTP responses in one place (the API's exception handlers) and into job
failures in one place (the queue worker). `retryable` tells the queue whether another attempt can
help: a network blip can, a corrupt file cannot.
"""

from __future__ import annotations


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


class CircuitOpen(TransientError):
    """A circuit breaker refused the call because the dependency keeps failing."""

    code = "dependency_unavailable"


class LeaseLost(ClipForgeError):
    """The worker no longer holds the job's lease; another worker owns it now."""

    code = "lease_lost"
