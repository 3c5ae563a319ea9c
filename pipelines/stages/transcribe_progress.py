"""Transcription progress while a transcribe job runs: seconds of media transcribed so far.

An ASR actor answers once per call, when all its parts are done, which for a long video is
minutes later. So each actor also posts, after every batched ASR call, how many seconds of each
part it has transcribed to a small board (a Ray actor without CPUs, reachable from any node);
the driver reads the board once a second and writes each job's total on its row
(`jobs.progress`), where `clipforge process` and anyone else reading the queue see it. Only the
driver writes to Postgres, as for every other stage output; the board holds nothing durable, and
a lost report only makes a bar lag.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

# The board is an actor of its own: its process imports this module and should start on Ray's
# imports alone, so the driver's database imports are type-only here or made where it writes.
if TYPE_CHECKING:
    from clipforge.db.pool import Pool

log = logging.getLogger(__name__)
_POLL_S = 1.0


class ProgressBoard:
    """Seconds transcribed per (job, part), as the ASR actors last reported them."""

    def __init__(self) -> None:
        self.done: dict[tuple[int, int], float] = {}

    def report(self, job_id: int, part: int, done_s: float) -> None:
        """A part's seconds done so far (they only grow)."""
        key = (job_id, part)
        self.done[key] = max(done_s, self.done.get(key, 0.0))

    def forget(self, job_ids: list[int]) -> None:
        """Drop the jobs of a finished call."""
        self.done = {k: v for k, v in self.done.items() if k[0] not in job_ids}

    def totals(self) -> dict[int, float]:
        """Seconds done per job, all its parts together."""
        out: dict[int, float] = {}
        for (job_id, _), seconds in self.done.items():
            out[job_id] = out.get(job_id, 0.0) + seconds
        return out


def post(board: Any, job_id: int, part: int, done_s: float) -> None:
    """Report to the board without waiting (from an ASR actor; `board` may be None)."""
    if board is None:
        return
    try:
        board.report.remote(job_id, part, done_s)
    except Exception:  # progress is advisory: a failed report never fails the transcription
        log.debug("progress report failed", exc_info=True)


class ProgressWriter:
    """The driver's side: one board for the stage, polled while a batch runs."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._board: Any = None
        self._lock = threading.Lock()

    def _board_handle(self) -> Any:
        import ray

        with self._lock:
            if self._board is None:
                remote = ray.remote(ProgressBoard).options(num_cpus=0, max_restarts=-1)
                self._board = remote.remote()
            return self._board

    @contextlib.contextmanager
    def watch(self, totals: Mapping[int, float]) -> Iterator[Any]:
        """While inside, copy the board's seconds for the jobs of `totals` (job id -> media
        seconds) to their rows; yields the board handle the actors report to."""
        board = self._board_handle()
        self._write({job_id: 0.0 for job_id in totals}, totals)  # a retry starts again at 0
        stop = threading.Event()
        thread = threading.Thread(
            target=self._poll, args=(board, totals, stop), name="transcribe-progress", daemon=True
        )
        thread.start()
        try:
            yield board
        finally:
            stop.set()
            thread.join(timeout=5)
            with contextlib.suppress(Exception):
                board.forget.remote(list(totals))

    def _poll(self, board: Any, totals: Mapping[int, float], stop: threading.Event) -> None:
        import ray

        shown: dict[int, float] = {}
        while not stop.wait(_POLL_S):
            try:
                done = ray.get(board.totals.remote(), timeout=10)
            except Exception:
                log.debug("progress board unreachable", exc_info=True)
                continue
            changed = {
                job_id: min(seconds, totals[job_id])
                for job_id, seconds in done.items()
                if job_id in totals and seconds != shown.get(job_id)
            }
            if changed:
                self._write(changed, totals)
                shown.update(changed)

    def _write(self, done: Mapping[int, float], totals: Mapping[int, float]) -> None:
        from clipforge.db.repo.video_jobs import set_job_progress  # the driver's (see the top)

        try:
            with self._pool.connection() as conn:
                for job_id, seconds in done.items():
                    set_job_progress(
                        conn, job_id=job_id, done_s=round(seconds, 2), total_s=totals[job_id]
                    )
        except Exception:  # the queue's own writes report a database outage
            log.debug("progress write failed", exc_info=True)
