"""Row conventions shared by the stages.

Rows are plain dicts sent to and returned by the stage actors (Ray pickles them, rich values
such as transcripts and clips included). A stage never raises for a bad input: it returns an
error row for that job, so one corrupt file fails its own job and not the whole batch.
"""

from __future__ import annotations

from typing import Any

from clipforge.errors import ClipForgeError
from clipforge.resilience import failure_fields, failure_from_fields

Row = dict[str, Any]


def error_row(job_id: int, exc: BaseException) -> Row:
    """The row that reports a failed job: its message, whether a retry may help, and the
    dependency that was down if that was the cause (so the queue delays rather than fails it)."""
    return {"job_id": job_id, **failure_fields(exc)}


class StageFailure(ClipForgeError):
    """A job's stage failed inside Ray; carries the original message and retryability."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable

    def describe(self) -> str:
        """The original error's own description (type and message), without this wrapper."""
        return str(self)


def failure_of(row: Row) -> ClipForgeError | None:
    """The failure an error row reports (a dependency outage stays one), or None."""
    return failure_from_fields(row)
