"""Object backups: an incremental mirror of the media keys in the backup store, with checksums.

Every object is copied through the storage layer (`ObjectStore`), so the backup store may be
another bucket, another S3 endpoint or account, or a local folder, and every copy is hashed
(SHA-256) on the way: a restore checks each object against the manifest before writing it back.
Media keys are derived from row ids and rarely change, so an object whose size and etag match
the previous backup's entry (and whose mirror copy is present) is not copied again: a nightly
backup costs the new media only. Overwritten or deleted mirror copies stay recoverable through
the backup bucket's versioning (cluster/backup/).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from clipforge.errors import NotFound
from clipforge.ops.pgtools import BackupError
from clipforge.storage import ObjectInfo, ObjectStore

MIRROR = "objects/"


class ObjectEntry(BaseModel):
    """One backed-up object.

    Attributes:
        key: the media key.
        size: bytes.
        etag: the media store's etag when copied (change detection only).
        sha256: hex SHA-256 of the content (checked on restore).
        content_type: stored Content-Type, restored with the object (the CDN serves it).
    """

    key: str
    size: int
    etag: str
    sha256: str
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class CopyStats:
    """Counts of one copy run: objects and bytes copied, objects skipped as unchanged."""

    copied: int
    skipped: int
    bytes_copied: int


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def list_objects(store: ObjectStore, prefixes: Sequence[str]) -> Iterator[ObjectInfo]:
    """Every object under `prefixes`, one listing page at a time."""
    for prefix in prefixes:
        token: str | None = None
        while True:
            page = store.list_page(prefix, limit=1000, token=token)
            yield from page.items
            if page.next_token is None:
                break
            token = page.next_token


def _copy(src: ObjectStore, src_key: str, dst: ObjectStore, dst_key: str, ctype: str | None) -> str:
    """Copy one object through a temporary file; its SHA-256."""
    with tempfile.TemporaryDirectory(prefix="cf-backup-") as tmp:
        local = src.download_file(src_key, Path(tmp) / "object")
        digest = sha256_of(local)
        dst.put_file(dst_key, local, content_type=ctype)
    return digest


def backup_objects(
    media: ObjectStore,
    backup: ObjectStore,
    prefixes: Sequence[str],
    *,
    previous: Mapping[str, ObjectEntry] | None = None,
    workers: int = 8,
) -> tuple[list[ObjectEntry], CopyStats]:
    """Mirror every media object under `prefixes` into `backup` (under `objects/`).

    Returns the manifest entries (key order) and what was copied.
    """
    previous = previous or {}

    def one(info: ObjectInfo) -> tuple[ObjectEntry, bool] | None:
        prev = previous.get(info.key)
        if prev is not None and (prev.size, prev.etag) == (info.size, info.etag):
            mirrored = backup.head(MIRROR + info.key)
            if mirrored is not None and mirrored.size == info.size:
                return prev, False
        head = media.head(info.key)  # listings carry no Content-Type
        ctype = head.content_type if head is not None else None
        try:
            digest = _copy(media, info.key, backup, MIRROR + info.key, ctype)
        except NotFound:  # deleted since the listing: nothing to keep (the database came first)
            return None
        entry = ObjectEntry(
            key=info.key, size=info.size, etag=info.etag, sha256=digest, content_type=ctype
        )
        return entry, True

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="backup") as pool:
        results = [r for r in pool.map(one, list_objects(media, prefixes)) if r is not None]
    entries = sorted((entry for entry, _ in results), key=lambda e: e.key)
    copied = [entry for entry, was_copied in results if was_copied]
    stats = CopyStats(
        copied=len(copied),
        skipped=len(results) - len(copied),
        bytes_copied=sum(e.size for e in copied),
    )
    return entries, stats


def restore_objects(
    entries: Sequence[ObjectEntry],
    backup: ObjectStore,
    media: ObjectStore,
    *,
    overwrite: bool = False,
    workers: int = 8,
) -> CopyStats:
    """Copy the objects of a manifest back into the media store, each checked by SHA-256.

    An object already present with the same size is left alone unless `overwrite` (a restore
    after a partial loss copies only what is missing). A copy whose checksum differs from the
    manifest is refused before anything is written for it.
    """

    def one(entry: ObjectEntry) -> bool:
        if not overwrite:
            present = media.head(entry.key)
            if present is not None and present.size == entry.size:
                return False
        with tempfile.TemporaryDirectory(prefix="cf-restore-") as tmp:
            local = backup.download_file(MIRROR + entry.key, Path(tmp) / "object")
            digest = sha256_of(local)
            if digest != entry.sha256:
                raise BackupError(
                    f"backup copy of {entry.key} is damaged (sha256 {digest}, "
                    f"manifest {entry.sha256}); not restored"
                )
            media.put_file(entry.key, local, content_type=entry.content_type)
        return True

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="restore") as pool:
        done = list(pool.map(one, entries))
    copied = [e for e, was in zip(entries, done, strict=True) if was]
    return CopyStats(
        copied=len(copied),
        skipped=len(done) - len(copied),
        bytes_copied=sum(e.size for e in copied),
    )
