"""Every ffmpeg process ClipForge starts: cut, reframe, burn captions, extract and decode audio.

The binary comes from the `imageio-ffmpeg` wheel so no system ffmpeg is needed; it honours
`IMAGEIO_FFMPEG_EXE` for deployments that ship their own build. Nothing outside
`clipforge.media` starts it (tests/clipforge/media/test_ffmpeg_owner.py greps for that), so the
rules below hold for every call:

- stdin is never the terminal: `-nostdin` and `stdin=DEVNULL` (or a pipe we feed). A child of a
  Ray worker sits in a background process group and would be stopped by SIGTTIN if it read it;
- a timeout: a stuck ffmpeg is killed and raises `ToolTimeout` (retryable) instead of holding a
  stage actor forever;
- stderr is captured (`-v error`) and becomes the error message: `tool_failure` makes a full
  disk a `DependencyUnavailable[disk]` (the job waits for space) and anything else a
  `MediaError` (bad input; retrying cannot help);
- one tracing span `ffmpeg` per process, with `ffmpeg.step` saying what it was for.

`run_ffmpeg` runs one command to the end and returns its stdout; `ffmpeg_pipe` is the common
case of a span of a source converted to raw samples or pixels on stdout; `ffmpeg_read` streams
stdout in fixed-size records for outputs too big to hold (decoded frames of a long clip), and
`ffmpeg_write` feeds stdin from an iterator (encoding frames made in Python).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import IO

import imageio_ffmpeg

from clipforge.errors import tool_failure
from clipforge.media.errors import ToolTimeout

#: Flags every command starts with: no terminal, no banner, errors only, overwrite outputs.
COMMON_FLAGS = ("-nostdin", "-hide_banner", "-v", "error", "-y")


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Absolute path of the ffmpeg executable (looked up once per process)."""
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def run_ffmpeg(
    args: Sequence[str], *, timeout_s: float, step: str, input: bytes | None = None
) -> bytes:
    """Run `ffmpeg COMMON_FLAGS *args` to the end and return what it wrote to stdout.

    `input` is fed to stdin (for `-i -`); without it stdin is /dev/null.

    Raises:
        MediaError: ffmpeg failed (its stderr says why), or `DependencyUnavailable[disk]` where
            that was a full disk (`clipforge.errors.tool_failure`).
        ToolTimeout: it ran longer than `timeout_s` and was killed.
    """
    from clipforge.observability.tracing import span  # not at import: probing needs no tracing

    cmd = [ffmpeg_exe(), *COMMON_FLAGS, *args]
    with span("ffmpeg", {"ffmpeg.step": step}):
        try:
            done = subprocess.run(
                cmd,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                check=False,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise ToolTimeout.of(step, timeout_s) from None
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace")
        raise tool_failure(f"ffmpeg {step} failed: {stderr_summary(stderr)}", stderr)
    return done.stdout


def ffmpeg_pipe(
    src: Path,
    start_s: float,
    duration_s: float,
    output_args: Sequence[str],
    *,
    timeout_s: float,
    step: str,
) -> bytes:
    """`duration_s` of `src` from `start_s` (input seeking, so only that span is decoded),
    converted by `output_args` (which must name a raw format, e.g. ``-f f32le``) to stdout."""
    seek = ["-ss", f"{start_s:.3f}", "-i", str(src), "-t", f"{duration_s:.3f}"]
    return run_ffmpeg([*seek, *output_args, "pipe:1"], timeout_s=timeout_s, step=step)


def ffmpeg_read(
    args: Sequence[str], record_bytes: int, *, timeout_s: float, step: str
) -> Iterator[bytes]:
    """Run `ffmpeg COMMON_FLAGS *args` (one output should be ``pipe:1``) and yield its stdout
    in records of `record_bytes` (a partial last record is dropped) as they come.

    Like `clipforge.media.container.decode_frames`: a source cut short after good records ends
    there; a failure before the first record raises as `run_ffmpeg` does. Closing the iterator
    early stops ffmpeg. Once it is exhausted the process has exited, so other outputs it wrote
    are complete.
    """
    if record_bytes <= 0:
        raise ValueError("record_bytes must be positive")
    with _Process(args, step=step, timeout_s=timeout_s, stdout=True) as proc:
        out = proc.stdout
        yielded = False
        while True:
            data = out.read(record_bytes)
            if len(data) < record_bytes:
                break
            yielded = True
            yield data
        proc.finish(tolerate_failure=yielded)


def ffmpeg_write(
    args: Sequence[str], chunks: Iterable[bytes], *, timeout_s: float, step: str
) -> None:
    """Run `ffmpeg COMMON_FLAGS *args` (one input should be ``-i -``) feeding `chunks` to its
    stdin, e.g. raw frames to encode. Raises as `run_ffmpeg` does."""
    with _Process(args, step=step, timeout_s=timeout_s, stdin=True) as proc:
        sink = proc.stdin
        try:
            for chunk in chunks:
                sink.write(chunk)
        except BrokenPipeError:
            pass  # ffmpeg quit early: its exit status and stderr say why
        finally:
            with contextlib.suppress(BrokenPipeError):
                sink.close()
        proc.finish(tolerate_failure=False)


class _Process:
    """One streaming ffmpeg process: stderr to a temporary file (a pipe could fill up and block
    it while we only read stdout), a watchdog that kills it after the timeout, and on leaving
    the block it is always ended and reaped."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        step: str,
        timeout_s: float,
        stdin: bool = False,
        stdout: bool = False,
    ) -> None:
        self._cmd = [ffmpeg_exe(), *COMMON_FLAGS, *args]
        self._step = step
        self._timeout_s = timeout_s
        self._pipes = (stdin, stdout)
        self._timed_out = threading.Event()

    def __enter__(self) -> _Process:
        from clipforge.observability.tracing import span

        self._span = span("ffmpeg", {"ffmpeg.step": self._step})
        self._span.__enter__()
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        stdin, stdout = self._pipes
        self._proc = subprocess.Popen(
            self._cmd,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=self._stderr,
        )
        self._watchdog = threading.Timer(self._timeout_s, self._kill)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    @property
    def stdout(self) -> IO[bytes]:
        assert self._proc.stdout is not None
        return self._proc.stdout

    @property
    def stdin(self) -> IO[bytes]:
        assert self._proc.stdin is not None
        return self._proc.stdin

    def _kill(self) -> None:
        self._timed_out.set()
        self._proc.kill()

    def finish(self, *, tolerate_failure: bool) -> None:
        """Wait for the exit; raise for a timeout, or for a failure unless tolerated."""
        code = self._proc.wait()
        if self._timed_out.is_set():
            raise ToolTimeout.of(self._step, self._timeout_s)
        if code != 0 and not tolerate_failure:
            self._stderr.seek(0)
            stderr = self._stderr.read().decode(errors="replace")
            raise tool_failure(f"ffmpeg {self._step} failed: {stderr_summary(stderr)}", stderr)

    def __exit__(self, *exc_info: object) -> None:
        self._watchdog.cancel()
        try:
            if self._proc.poll() is None:  # left early (an error, or the reader stopped)
                self._proc.kill()
            for pipe in (self._proc.stdout, self._proc.stdin):
                if pipe is not None:
                    with contextlib.suppress(BrokenPipeError):
                        pipe.close()
            self._proc.wait()
        finally:
            self._stderr.close()
            self._span.__exit__(*exc_info)  # type: ignore[arg-type]


def stderr_summary(stderr: str, limit: int = 600) -> str:
    """ffmpeg names the cause first and the consequences after it: keep the head, then the tail."""
    text = stderr.strip()
    if len(text) <= limit:
        return text
    return f"{text[: limit * 2 // 3]} … {text[-limit // 3 :]}"
