"""Stage progress of one video for `clipforge process`: a bar per stage with elapsed time.

The truth is the job queue: a stage is running while its job is `running`, done when it
succeeded, and a failed or dead job shows its reason. A background thread polls the video's jobs
(one small query a second) and updates a rich progress display on the terminal stream.
"""

from __future__ import annotations

import threading
import uuid
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column

from clipforge.db.pool import Pool
from clipforge.db.repo.video_jobs import StageCounts, video_job_counts

STAGES = ("import", "transcribe", "detect", "export")
_LABELS = {
    "import": "import",
    "transcribe": "transcribe",
    "detect": "find clips",
    "export": "render clips",
}


class StageProgress:
    """Shows the video's stages as they run until closed (a context manager)."""

    def __init__(
        self, pool: Pool, video_id: uuid.UUID, stream: TextIO, *, poll_s: float = 0.5
    ) -> None:
        self._pool, self._video_id, self._poll_s = pool, video_id, poll_s
        self._console = Console(file=stream, highlight=False)
        self._progress = Progress(
            # Fixed columns keep their width; only the note gives way (ellipsis) on a narrow screen.
            TextColumn("{task.description}", table_column=Column(min_width=12, no_wrap=True)),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn(
                "{task.fields[note]}",
                table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1),
            ),
            console=self._console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stage-progress", daemon=True)

    def __enter__(self) -> StageProgress:
        self._progress.start()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        self.refresh()  # the final state, even if the last poll came before the end
        self._progress.stop()

    def refresh(self) -> None:
        """Read the video's jobs once and update the display."""
        try:
            with self._pool.connection() as conn:
                counts = video_job_counts(conn, video_id=self._video_id)
        except Exception:
            return
        for stage in STAGES:
            if stage in counts:
                self._show(stage, counts[stage])

    def _loop(self) -> None:
        while not self._done.wait(self._poll_s):
            self.refresh()

    def _show(self, stage: str, counts: StageCounts) -> None:
        states = counts.states
        bad = states["failed"] + states["dead"]
        if bad:
            note = f"[red]failed: {_one_line(counts.last_error)}[/red]"
        elif states["running"]:
            note = "running"
        elif states["queued"] and counts.last_error:
            note = f"[yellow]retrying: {_one_line(counts.last_error)}[/yellow]"
        else:
            note = "done" if counts.finished == counts.total else "waiting"
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(
                _LABELS[stage], total=counts.total, note=note
            )
        task = self._tasks[stage]
        self._progress.update(task, total=counts.total, completed=counts.finished, note=note)
        if counts.finished == counts.total:
            self._progress.stop_task(task)  # freezes its elapsed time at the stage's end


def _one_line(text: str | None, limit: int = 90) -> str:
    line = " ".join((text or "unknown error").split())
    return escape(line if len(line) <= limit else line[: limit - 1] + "…")
