"""A node-local LRU cache of stored objects, shared through the filesystem by every process.

Import already holds the original and the audio track it stored; transcribe, detect and export
run on the same machine a moment later. Keeping a bounded local copy spares them a second
download of a file that can be gigabytes. Entries are named by key *and* etag, so an object
overwritten in the store (a re-import) is never served stale: the new etag is a new entry and
the old one ages out. Writers download to a temporary name and rename, so readers never see a
partial file, and a per-entry lock file keeps two processes from downloading the same object.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from clipforge.errors import NotFound
from clipforge.settings import Settings
from clipforge.storage.base import ObjectStore

log = logging.getLogger(__name__)
# An entry used this recently is never evicted: a reader may have just been handed its path.
_IN_USE_S = 120.0


class ObjectCache:
    """Objects by (key, etag) under `root`, evicting least recently used beyond `max_bytes`."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        if max_bytes > 0:
            root.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectCache:
        """The cache the settings describe (`OBJECT_CACHE_DIR`, `OBJECT_CACHE_MAX_BYTES`)."""
        root = settings.object_cache_dir or settings.data_dir / "object-cache"
        return cls(root, settings.object_cache_max_bytes)

    @property
    def enabled(self) -> bool:
        """False when the size limit is 0: every fetch downloads to the caller's folder."""
        return self.max_bytes > 0

    def _entry(self, key: str, etag: str) -> Path:
        digest = hashlib.sha256(f"{key}\0{etag}".encode()).hexdigest()[:40]
        return self.root / f"{digest}{Path(key).suffix}"

    def fetch(self, store: ObjectStore, key: str, scratch: Path) -> Path:
        """A local path with the object's current content (`NotFound` if it is not stored).

        Disabled, the object is downloaded into the folder `scratch` (the caller's to delete).
        """
        if not self.enabled:
            return store.download_file(key, scratch / f"object{Path(key).suffix}")
        info = store.head(key)  # the etag names the content version
        if info is None:
            raise NotFound(f"object {key} not found")
        entry = self._entry(key, info.etag)
        if self._touch(entry):
            self.hits += 1
            return entry
        self.misses += 1
        return self._fill(entry, lambda tmp: store.download_file(key, tmp))

    def put(self, key: str, etag: str, local: Path) -> None:
        """Add a file the caller just stored under `key` (write-through; best effort)."""
        if not self.enabled:
            return
        entry = self._entry(key, etag)
        try:
            if not self._touch(entry):
                self._fill(entry, lambda tmp: Path(shutil.copyfile(local, tmp)))
        except OSError:  # a full or read-only cache disk must not fail the stage
            log.warning("object cache write failed", extra={"key": key}, exc_info=True)

    def _touch(self, entry: Path) -> bool:
        try:
            os.utime(entry)  # mtime is the LRU clock
        except FileNotFoundError:
            return False
        return True

    def _fill(self, entry: Path, produce: Callable[[Path], Path]) -> Path:
        with (entry.parent / f".{entry.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one process downloads; the others wait for it
            if self._touch(entry):
                return entry
            fd, name = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
            os.close(fd)
            try:
                os.replace(produce(Path(name)), entry)
            except BaseException:
                Path(name).unlink(missing_ok=True)
                raise
        self._evict(keep=entry)
        return entry

    def _evict(self, *, keep: Path) -> None:
        """Delete least recently used entries until the cache fits its limit again."""
        entries = []
        for path in self.root.iterdir():
            if path.name.startswith("."):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # evicted by another process meanwhile
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        now = time.time()
        for mtime, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            if path == keep or now - mtime < _IN_USE_S:
                continue
            path.unlink(missing_ok=True)
            (path.parent / f".{path.name}.lock").unlink(missing_ok=True)
            total -= size
