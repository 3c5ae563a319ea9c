"""What `clipforge process` shows while it runs: one line per step, from start-up to shut-down.

Start-up (Postgres, Ray, the stage actors and their models), the four stages, writing the
outputs and shutting down each get a line with a bar, an amount and the elapsed time, so no part
of a run passes with nothing on screen. The stages' truth is the job queue: a background thread
polls the video's jobs (one small query every half second). A stage is running while its job is
`running` and done when it succeeded; a failed or dead job shows its reason. Transcription shows
seconds of media transcribed (`jobs.progress`, written by the transcribe stage while it runs);
the other stages count their jobs (clips rendered of clips found). A finished line's bar is full
and green (a basic ANSI colour, so it stays green on a 16-colour terminal).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column

from clipforge.db.pool import Pool
from clipforge.db.repo.video_jobs import StageCounts, video_job_counts
from clipforge.stages import STAGES
from clipforge.terminal import interrupted


def clock(seconds: float) -> str:
    """m:ss (h:mm:ss from an hour on)."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class RunProgress:
    """The run's lines on a terminal stream, until closed (a context manager)."""

    def __init__(self, stream: TextIO, *, poll_s: float = 0.5) -> None:
        self._poll_s = poll_s
        self._console = Console(file=stream, highlight=False)
        self._progress = Progress(
            # Fixed columns keep their width; only the note gives way (ellipsis) on a narrow screen.
            TextColumn("{task.description}", table_column=Column(min_width=12, no_wrap=True)),
            # Basic ANSI colours: rich's default RGB styles turn into the same grey on a
            # 16-colour terminal, where a finished bar then looked empty.
            BarColumn(
                bar_width=24, style="bright_black", complete_style="cyan", finished_style="green"
            ),
            TextColumn("{task.fields[amount]}", table_column=Column(min_width=9, no_wrap=True)),
            TimeElapsedColumn(),
            TextColumn(
                "{task.fields[note]}",
                table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1),
            ),
            console=self._console,
            transient=False,
            refresh_per_second=2,  # the jobs are polled twice a second: faster redraws show nothing new
            # Python's own stdout/stderr stay on the log file (clipforge/terminal.py): rich's
            # default would print every library warning and log line above the bars.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._open: set[str] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> RunProgress:
        # The redraw thread starts here and inherits this thread's signal mask: with SIGTERM,
        # SIGHUP and SIGINT blocked in it, they always go to a thread that has them unblocked.
        # Otherwise a signal during ray.init (which blocks them in the main thread only, see
        # pipelines.local.one_video.local_ray) lands in the redraw thread under Ray's C++ handler, which
        # aborts the process instead of unwinding it.
        stop = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, stop)
        try:
            self._progress.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def begin(self, label: str, note: str = "") -> None:
        """Open a step's line that a later `step` of the same label continues and ends (the
        CLI's start-up begins before the pipeline code is even imported)."""
        self._set(label, completed=0, total=1, amount="", note=note)
        self._open.add(label)

    @contextlib.contextmanager
    def step(self, label: str, note: str = "") -> Iterator[Callable[[str], None]]:
        """A line for a step without stages (start-up, writing outputs, shutting down) while
        inside; yields a function that changes its note. It ends `done`, or `failed` /
        `interrupted` when the step raises."""
        if label in self._open:  # continue the line `begin` opened
            self._open.discard(label)
            self._set(label, note=note)
        else:
            self._set(label, completed=0, total=1, amount="", note=note)

        def say(text: str) -> None:
            self._set(label, note=text)

        try:
            yield say
        except BaseException as exc:
            note = "[yellow]interrupted[/yellow]" if interrupted(exc) else "[red]failed[/red]"
            self._set(label, note=note, stop=True)
            raise
        self._set(label, completed=1, note="done", stop=True)

    @contextlib.contextmanager
    def stages(self, pool: Pool, video_id: uuid.UUID) -> Iterator[None]:
        """While inside, show the video's stages as its jobs run (and their final state)."""
        done = threading.Event()

        def loop() -> None:
            while not done.wait(self._poll_s):
                self.refresh(pool, video_id)

        thread = threading.Thread(target=loop, name="stage-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=5)
            self.refresh(pool, video_id)  # the final state, even if the last poll came before

    def refresh(self, pool: Pool, video_id: uuid.UUID) -> None:
        """Read the video's jobs once and update the stage lines."""
        try:
            with pool.connection() as conn:
                counts = video_job_counts(conn, video_id=video_id)
        except Exception:
            return
        for stage in STAGES:  # in pipeline order, each on its registry label
            if stage.name in counts:
                self._show(stage.label, counts[stage.name])

    def _show(self, label: str, counts: StageCounts) -> None:
        states = counts.states
        bad = states["failed"] + states["dead"]
        finished = counts.finished == counts.total
        if bad:
            note = f"[red]failed: {_one_line(counts.last_error)}[/red]"
        elif states["running"]:
            note = "running"
        elif states["queued"] and counts.last_error:
            note = f"[yellow]retrying: {_one_line(counts.last_error)}[/yellow]"
        else:
            note = "done" if finished else "waiting"
        if counts.total_s:  # seconds of media
            done_s = counts.total_s if finished and not bad else counts.done_s or 0.0
            # Whole tenths: rich's bar rounds a float fraction such as 25.9/25.9 down a half.
            completed, total = round(done_s * 10), round(counts.total_s * 10)
            amount = f"{clock(done_s)}/{clock(counts.total_s)}"
        else:
            completed, total = counts.finished, counts.total
            amount = f"{counts.finished}/{counts.total}"
        self._set(
            label,
            completed=completed,
            total=total,
            amount=amount,
            note=note,
            stop=finished,
        )

    def _set(
        self,
        label: str,
        *,
        completed: float | None = None,
        total: float | None = None,
        amount: str | None = None,
        note: str,
        stop: bool = False,
    ) -> None:
        with self._lock:
            if label not in self._tasks:
                self._tasks[label] = self._progress.add_task(
                    label, total=total, amount=amount or "", note=note
                )
            task = self._tasks[label]
            self._progress.update(task, completed=completed, total=total, note=note)
            if amount is not None:
                self._progress.update(task, amount=amount)
            if stop:
                self._progress.stop_task(task)  # freezes its elapsed time at the step's end


def _one_line(text: str | None, limit: int = 90) -> str:
    line = " ".join((text or "unknown error").split())
    return escape(line if len(line) <= limit else line[: limit - 1] + "…")
