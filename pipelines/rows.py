"""Ray Data row conventions shared by the stages.

Rows are plain dicts. Rich values (audio chunks, transcripts, clips) travel as pickled bytes in
one column, which Arrow stores as binary without trying to infer a schema for them. A stage never
raises for a bad input: it returns an error row for that job, so one corrupt file fails its own
job and not the whole batch.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from clipforge.errors import ClipForgeError

Row = dict[str, Any]


def pack(value: object) -> bytes:
    """Serialise a value for a row column."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(blob: bytes) -> Any:
    """Inverse of `pack` (rows only ever come from our own stages)."""
    return pickle.loads(blob)  # only ever bytes from pack() in this cluster


def error_row(job_id: int, exc: BaseException) -> Row:
    """The row that reports a failed job: message and whether a retry may help."""
    if isinstance(exc, ClipForgeError):
        return {"job_id": job_id, "error": exc.describe(), "retryable": exc.retryable}
    return {"job_id": job_id, "error": f"{type(exc).__name__}: {exc}", "retryable": True}


def guarded(fn: Callable[[Row], Row]) -> Callable[[Row], Row]:
    """Wrap a per-row stage function so an exception becomes that job's error row."""

    def run(row: Row) -> Row:
        try:
            return fn(row)
        except Exception as exc:  # reported on the job; the batch goes on
            return error_row(int(row["job_id"]), exc)

    return run


class StageFailure(ClipForgeError):
    """A job's stage failed inside Ray; carries the original message and retryability."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable

    def describe(self) -> str:
        """The original error's own description (type and message), without this wrapper."""
        return str(self)


def failure_of(row: Row) -> StageFailure | None:
    """The failure an error row reports, or None for a good row."""
    if row.get("error"):
        return StageFailure(str(row["error"]), retryable=bool(row.get("retryable", True)))
    return None
