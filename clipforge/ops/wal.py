"""Shipping the WAL archive folder to the backup store, and fetching it back for a restore.

`archive_command` (clipforge.ops.pg_backup) copies segments into a folder on the database host,
which protects against mistakes and corruption but not against losing the host. `sync_wal`
copies the folder's new files into `wal/` of the backup store (run it every few minutes: the
recovery point is then that interval plus `archive_timeout`); `fetch_wal` brings them back into
a folder that `restore_command` reads.
"""

from __future__ import annotations

import re
from pathlib import Path

from clipforge.ops.objects import list_objects
from clipforge.storage import ObjectStore

WAL_PREFIX = "wal/"
# Segments (24 hex digits), timeline histories and backup labels; never a half-copied `.part`.
_WAL_NAME = re.compile(r"^[0-9A-F]{24}(\.[0-9A-F]{8}\.backup|\.partial)?$|^[0-9A-F]{8}\.history$")


def sync_wal(archive: Path, store: ObjectStore) -> int:
    """Upload the archived WAL files not yet in the store; how many were uploaded.

    Archived segments never change (archive_command refuses to overwrite), so a name already
    in the store is done.
    """
    shipped = {info.key.removeprefix(WAL_PREFIX) for info in list_objects(store, [WAL_PREFIX])}
    sent = 0
    for path in sorted(archive.iterdir()):
        if path.is_file() and _WAL_NAME.match(path.name) and path.name not in shipped:
            store.put_file(WAL_PREFIX + path.name, path)
            sent += 1
    return sent


def fetch_wal(store: ObjectStore, dest: Path) -> int:
    """Download every shipped WAL file into `dest` (kept when already there); how many."""
    dest.mkdir(parents=True, exist_ok=True)
    fetched = 0
    for info in list_objects(store, [WAL_PREFIX]):
        name = info.key.removeprefix(WAL_PREFIX)
        if _WAL_NAME.match(name) and not (dest / name).exists():
            store.download_file(info.key, dest / name)
            fetched += 1
    return fetched
