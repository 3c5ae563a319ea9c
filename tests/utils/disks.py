"""A small real filesystem (tmpfs) that tests fill up to provoke ENOSPC."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


class SmallDisk:
    """A mounted tmpfs; `fill(leave)` leaves `leave` bytes free, `free_up()` undoes it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._filler = root / "filler"

    def free(self) -> int:
        """Bytes free for an unprivileged writer."""
        stats = os.statvfs(self.root)
        return stats.f_bavail * stats.f_frsize

    def fill(self, leave: int) -> None:
        """Write a filler file so that about `leave` bytes stay free."""
        self.free_up()
        with self._filler.open("wb") as out:
            out.write(b"\0" * max(0, self.free() - leave))
        assert abs(self.free() - leave) < 64 * 1024, self.free()

    def free_up(self) -> None:
        """Remove the filler."""
        self._filler.unlink(missing_ok=True)


@contextlib.contextmanager
def small_disk(root: Path, size_mb: int) -> Iterator[SmallDisk]:
    """A tmpfs of `size_mb` MB mounted at `root` (created); skips the test where this process
    may not mount one (no CAP_SYS_ADMIN)."""
    root.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(root)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield SmallDisk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)
