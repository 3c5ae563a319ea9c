"""What crosses the boundary between the driver and a stage actor besides the stage's own values.

Each stage sends its actors one frozen input dataclass per job (or per part of a job) and gets
back its output dataclass, defined in the stage's module; Ray pickles them, rich values such as
transcripts and clips included. A stage never raises for a bad input: it returns a `StageError`
for that job, so one corrupt file fails its own job and not the whole batch. The error is
classified where it was raised (`clipforge.resilience.classify_failure`) and travels as that
typed `Failure`, so the driver never parses text to learn whether a dependency was down.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from clipforge.errors import ClipForgeError
from clipforge.resilience import Failure, RecordedFailure, classify_failure

_MAX_TRACEBACK_CHARS = 8000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StageError:
    """A job's failure inside a stage actor.

    Attributes:
        job_id: the job that failed.
        failure: its classification: the recorded error, whether a retry may help, and the
            dependency that was down if that was the cause (the queue then delays the job
            rather than failing it).
        traceback: the actor's traceback for an unexpected failure (retryable, no dependency
            down): the actor's process has the only one, and the error report the driver sends
            if the job ends `dead` should say where it happened. None otherwise.
    """

    job_id: int
    failure: Failure
    traceback: str | None = None

    @classmethod
    def of(cls, job_id: int, exc: BaseException) -> StageError:
        """The error value of `job_id` failing with `exc` (called in the actor)."""
        failure = classify_failure(exc)
        trace = None
        if failure.retryable and failure.dependency is None:
            trace = "".join(traceback.format_exception(exc))[-_MAX_TRACEBACK_CHARS:]
        return cls(job_id, failure, trace)

    def exception(self) -> ClipForgeError:
        """The failure as an exception on the driver's side; the actor's traceback, if kept,
        rides along as an exception note (Sentry shows notes)."""
        error = RecordedFailure(self.failure)
        if self.traceback:
            error.add_note(f"traceback in the stage actor:\n{self.traceback}")
        return error


def job_value(job_id: int, run: Callable[[], T]) -> T | StageError:
    """`run()`'s output, or the job's `StageError` if it raises (in an actor: the job fails
    alone, the other jobs of the batch go on)."""
    try:
        return run()
    except Exception as exc:
        return StageError.of(job_id, exc)


class StageFailure(ClipForgeError):
    """A job's stage failed around its actors (an actor died, the batch timed out)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable

    def describe(self) -> str:
        """The message itself: it already says which stage failed and how."""
        return str(self)
