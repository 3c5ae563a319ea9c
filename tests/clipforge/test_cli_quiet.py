"""A normal command prints no warnings on a terminal: `clipforge --help`, and `clipforge keys
list` on the embedded default (which imports pgserver, whose platformdirs lookup warned
"RuntimeDirWarning: XDG_RUNTIME_DIR is not set" on every command where that variable is unset)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import psutil

_WARNING = re.compile(r"warn", re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# The installed console script, as a user runs it.
CLIPFORGE = str(Path(sys.executable).parent / "clipforge")


def _run_in_pty(args: list[str], env: dict[str, str], timeout_s: float = 120.0) -> tuple[int, str]:
    """Run `clipforge ARGS` with stdout and stderr on a pseudo-terminal; its exit code and text."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [CLIPFORGE, *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None and not select.select([leader], [], [], 0.2)[0]:
            break
    os.close(leader)
    code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    return code, _ANSI.sub("", b"".join(chunks).decode(errors="replace"))


def _embedded_postgres(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(str(data_dir) in part for part in cmdline) and "postgres" in " ".join(cmdline):
            found.append(proc)
    return found


def test_help_and_a_command_on_the_embedded_default_print_no_warning(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"XDG_RUNTIME_DIR", "DATABASE_URL"}}
    env |= {"DATA_DIR": str(tmp_path / "data"), "TERM": "xterm-256color", "COLUMNS": "100"}

    code, text = _run_in_pty(["--help"], env)
    assert code == 0 and "Usage: clipforge" in text
    assert not [line for line in text.splitlines() if _WARNING.search(line)], text

    try:
        code, text = _run_in_pty(["keys", "list"], env)
        assert code == 0, text
        assert text.strip() == "no active API keys", text  # nothing else on the terminal
    finally:
        # The command stops the server it started; a leftover would be a bug of its own, not
        # something to leave running on a shared machine.
        for proc in _embedded_postgres(tmp_path / "data"):
            proc.kill()
