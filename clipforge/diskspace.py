"""The free-space floor: a full disk is an outage of the host, handled like any other.

A worker checks it before it claims stage work (`DiskFloor.require`) and the API's `/ready`
reports it: below `DISK_FREE_FLOOR_MB` free on a folder the process writes to (the temp folder,
the local store, the node's object cache) the disk counts as unavailable, so no new job starts
only to fail half-way with ENOSPC. Jobs already running that do hit ENOSPC are classified as
`DependencyUnavailable[disk]` (`clipforge.resilience`) and wait without spending attempts.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from clipforge.errors import DependencyUnavailable
from clipforge.metrics import DEPENDENCY_UP, DISK_FREE_BYTES
from clipforge.settings import Settings

DISK = "disk"
_PROBE_MIN_BYTES = 64 * 1024**2


def _existing(path: Path) -> Path:
    """`path`, or its nearest existing parent (a folder made on first use may not exist yet)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def written_folders(settings: Settings) -> list[Path]:
    """Folders this host writes media to: temp files, the local store, the object cache."""
    folders = [Path(tempfile.gettempdir())]
    if settings.storage_backend == "local":
        folders.append(settings.storage_dir)
    folders.append(settings.object_cache_dir or settings.data_dir / "object-cache")
    return folders


@dataclass(frozen=True, slots=True)
class DiskCheck:
    """Free bytes per folder, and which are under the floor."""

    free: dict[str, int]
    low: list[str]

    @property
    def ok(self) -> bool:
        """Whether every folder has at least the floor free."""
        return not self.low


class DiskFloor:
    """Checks the folders a process writes to against `DISK_FREE_FLOOR_MB` (0 disables)."""

    def __init__(self, settings: Settings, folders: list[Path] | None = None) -> None:
        self.floor_bytes = settings.disk_free_floor_mb * 1024**2
        self.folders = folders if folders is not None else written_folders(settings)

    def check(self) -> DiskCheck:
        """Measure every folder (updating the gauges); never raises for a low disk."""
        free: dict[str, int] = {}
        for folder in self.folders:
            free[str(folder)] = shutil.disk_usage(_existing(folder)).free
            DISK_FREE_BYTES.labels(path=str(folder)).set(free[str(folder)])
        low = [path for path, left in free.items() if left < self.floor_bytes]
        DEPENDENCY_UP.labels(dependency=DISK).set(0 if low else 1)
        return DiskCheck(free=free, low=low)

    def probe(self) -> None:
        """Raise while the disk cannot take work: under the floor, or (floor disabled) under
        `_PROBE_MIN_BYTES`, so jobs that met ENOSPC are not woken onto a still-full disk."""
        floor = self.floor_bytes or _PROBE_MIN_BYTES
        result = self.check()
        low = [p for p, left in result.free.items() if left < floor]
        if low:
            raise DependencyUnavailable(
                f"still under {floor // 1024**2} MB free: {low}", dependency=DISK
            )

    def require(self) -> None:
        """Raise `DependencyUnavailable[disk]` while a folder is under the floor."""
        if self.floor_bytes <= 0:
            return
        result = self.check()
        if not result.ok:
            shown = ", ".join(f"{p} ({result.free[p] // 1024**2} MB free)" for p in result.low)
            raise DependencyUnavailable(
                f"less than DISK_FREE_FLOOR_MB={self.floor_bytes // 1024**2} free: {shown}",
                dependency=DISK,
            )
