"""Keep framework output off a person's terminal: what Ray, Postgres and ffmpeg print goes to a
log file, the command's own progress and messages go to the terminal.

Redirecting the process's file descriptors 1 and 2 (not just `sys.stderr`) is what catches the
lines written by Ray's C++ core and by child processes that inherit them; Python's `logging`
handlers that write to `sys.stderr` follow the descriptor too.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


@contextlib.contextmanager
def framework_output_to(log_path: Path, *, enabled: bool = True) -> Iterator[TextIO]:
    """Send fds 1 and 2 to `log_path` while inside; yield a stream that still reaches the terminal.

    With `enabled=False` (the `--verbose` flag) nothing is redirected and the yielded stream is
    `sys.stderr`. Logging goes to the log file at INFO either way, so a failed run can be read.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(log_path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(file_handler)
    if not enabled:
        try:
            yield sys.stderr
        finally:
            root.removeHandler(file_handler)
            file_handler.close()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    terminal = io.TextIOWrapper(
        os.fdopen(os.dup(saved_err), "wb", buffering=0), encoding="utf-8", line_buffering=True
    )
    # Console handlers stay quiet: the log file has every level, the terminal only our own lines.
    quieted = [(h, h.level) for h in root.handlers if h is not file_handler]
    for handler, _ in quieted:
        handler.setLevel(logging.CRITICAL + 1)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    try:
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (saved_out, saved_err, log_fd):
            os.close(fd)
        for handler, level in quieted:
            handler.setLevel(level)
        root.removeHandler(file_handler)
        file_handler.close()
        terminal.close()


def interrupted(exc: BaseException) -> bool:
    """Whether `exc` comes from Ctrl-C or a stop signal. A signal that lands while a C
    extension is being imported (ctranslate2 by faster-whisper, when the stages load) surfaces
    as "ImportError: initialization failed" raised from the KeyboardInterrupt."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
