"""Row conventions shared by the stages.

Rows are plain dicts sent to and returned by the stage actors (Ray pickles them, rich values
such as transcripts and clips included). A stage never raises for a bad input: it returns an
error row for that job, so one corrupt file fails its own job and not the whole batch.
"""

from __future__ import annotations

import traceback
from typing import Any

from clipforge.errors import ClipForgeError
from clipforge.resilience import failure_fields, failure_from_fields

Row = dict[str, Any]


_MAX_TRACEBACK_CHARS = 8000


def error_row(job_id: int, exc: BaseException) -> Row:
    """The row that reports a failed job: its message, whether a retry may help, and the
    dependency that was down if that was the cause (so the queue delays rather than fails it).

    An unexpected failure (retryable, no dependency down) also keeps its traceback: the actor's
    process has the only one, and the error report the driver sends if the job ends `dead`
    should say where it happened."""
    row: Row = {"job_id": job_id, **failure_fields(exc)}
    if row["retryable"] and not row["dependency"]:
        row["traceback"] = "".join(traceback.format_exception(exc))[-_MAX_TRACEBACK_CHARS:]
    return row


class StageFailure(ClipForgeError):
    """A job's stage failed inside Ray; carries the original message and retryability."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable

    def describe(self) -> str:
        """The original error's own description (type and message), without this wrapper."""
        return str(self)


def failure_of(row: Row) -> ClipForgeError | None:
    """The failure an error row reports (a dependency outage stays one), or None; the actor's
    traceback, if the row kept one, rides along as an exception note."""
    failure = failure_from_fields(row)
    if failure is not None and row.get("traceback"):
        failure.add_note(f"traceback in the stage actor:\n{row['traceback']}")
    return failure
