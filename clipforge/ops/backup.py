"""Backup sets: the database and the media objects, in a backup store, described by a manifest.

Layout in the backup store (`BACKUP_BUCKET`, else the folder `BACKUP_DIR`):

    sets/<id>/db/<file>          dump.pgc, or base.tar.gz + pg_wal.tar.gz + backup_manifest
    sets/<id>/manifest.json      written last: a set without it is incomplete and ignored
    objects/<media key>          the object mirror, shared by the sets (see clipforge.ops.objects)

The database is backed up first and the objects second. Stages store an object before the row
that names it commits, so every object a backed-up row references already exists when the
object copy lists the bucket: the set is consistent without stopping anything.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from clipforge.ops.objects import CopyStats, ObjectEntry, backup_objects, restore_objects, sha256_of
from clipforge.ops.pg_backup import (
    DatabaseBackup,
    base_backup,
    dump_database,
    prepare_base_restore,
    restore_dump,
)
from clipforge.ops.pgtools import BackupError, PgTools
from clipforge.settings import Settings
from clipforge.storage import LocalStore, ObjectStore, S3Store

Method = Literal["dump", "base"]
# Everything the application stores: media of videos and in-flight client uploads.
DEFAULT_PREFIXES = ("videos/", "uploads/")


class FileEntry(BaseModel):
    """One database backup file: name, size in bytes, hex SHA-256."""

    name: str
    size: int
    sha256: str


class DatabasePart(BaseModel):
    """The database half of a backup set (see `clipforge.ops.pg_backup.DatabaseBackup`)."""

    method: Method
    server_version: str
    files: list[FileEntry]
    table_counts: dict[str, int]
    counts_exact: bool


class BackupManifest(BaseModel):
    """What one backup set holds, with checksums and the time each half took."""

    format: int = 1
    id: str
    started_at: dt.datetime
    finished_at: dt.datetime
    database: DatabasePart | None
    object_prefixes: list[str]
    objects: list[ObjectEntry]
    objects_copied: int = 0  # new or changed since the previous set (the rest was mirrored)
    durations_s: dict[str, float]


def backup_store(settings: Settings) -> ObjectStore:
    """Where backup sets go: `BACKUP_BUCKET` on the S3 endpoint, else the `BACKUP_DIR` folder."""
    if settings.backup_bucket:
        if settings.backup_bucket == settings.s3_bucket:
            raise BackupError("BACKUP_BUCKET must not be the media bucket (S3_BUCKET)")
        update = {"s3_bucket": settings.backup_bucket, "cdn_base_url": None}
        return S3Store(settings.model_copy(update=update))
    return LocalStore(settings.backup_dir or settings.data_dir / "backups")


def _set_key(backup_id: str, name: str) -> str:
    return f"sets/{backup_id}/{name}"


def list_backups(store: ObjectStore) -> list[str]:
    """Ids of the complete backup sets (those with a manifest), oldest first."""
    ids: list[str] = []
    token: str | None = None
    while True:
        page = store.list_page("sets/", limit=1000, token=token)
        ids += [i.key.split("/")[1] for i in page.items if i.key.endswith("/manifest.json")]
        if page.next_token is None:
            return sorted(ids)
        token = page.next_token


def load_manifest(store: ObjectStore, backup_id: str) -> BackupManifest:
    """The manifest of one set; `NotFound` when there is no such (complete) set."""
    return BackupManifest.model_validate_json(store.get_bytes(_set_key(backup_id, "manifest.json")))


def _upload_database(db: DatabaseBackup, store: ObjectStore, backup_id: str) -> list[FileEntry]:
    entries = []
    for path in db.files:
        store.put_file(_set_key(backup_id, f"db/{path.name}"), path)
        entries.append(FileEntry(name=path.name, size=path.stat().st_size, sha256=sha256_of(path)))
    return entries


def create_backup(
    settings: Settings,
    database_url: str | None,
    *,
    media: ObjectStore,
    store: ObjectStore,
    method: Method = "dump",
    prefixes: Sequence[str] = DEFAULT_PREFIXES,
    work_dir: Path | None = None,
    workers: int = 8,
) -> BackupManifest:
    """Back up the database at `database_url` (None: objects only), then the media objects under
    `prefixes` (empty: database only), into `store`; returns the manifest it wrote last."""
    started = dt.datetime.now(dt.UTC)
    backup_id = started.strftime("%Y%m%dT%H%M%S") + f"{started.microsecond // 1000:03d}Z"
    durations: dict[str, float] = {}
    database: DatabasePart | None = None
    if database_url is not None:
        t0 = time.perf_counter()
        tools = PgTools.for_server(database_url, bin_dir=settings.pg_bin_dir)
        with tempfile.TemporaryDirectory(prefix="cf-backup-db-", dir=work_dir) as tmp:
            if method == "dump":
                db = dump_database(database_url, Path(tmp), tools)
            else:
                db = base_backup(database_url, Path(tmp) / "base", tools, label=backup_id)
            files = _upload_database(db, store, backup_id)
        database = DatabasePart(
            method=method,
            server_version=db.server_version,
            files=files,
            table_counts=db.table_counts,
            counts_exact=db.counts_exact,
        )
        durations["database"] = round(time.perf_counter() - t0, 3)
    entries: list[ObjectEntry] = []
    copied = 0
    if prefixes:
        t0 = time.perf_counter()
        entries, stats = backup_objects(
            media, store, prefixes, previous=_previous_objects(store), workers=workers
        )
        durations["objects"] = round(time.perf_counter() - t0, 3)
        copied = stats.copied
    manifest = BackupManifest(
        id=backup_id,
        started_at=started,
        finished_at=dt.datetime.now(dt.UTC),
        database=database,
        object_prefixes=list(prefixes),
        objects=entries,
        objects_copied=copied,
        durations_s=durations,
    )
    body = manifest.model_dump_json(indent=1).encode()
    store.put_bytes(_set_key(backup_id, "manifest.json"), body, content_type="application/json")
    return manifest


def _previous_objects(store: ObjectStore) -> dict[str, ObjectEntry]:
    """The objects of the newest set that has any (a database-only set says nothing of them)."""
    for backup_id in reversed(list_backups(store)):
        manifest = load_manifest(store, backup_id)
        if manifest.object_prefixes:
            return {e.key: e for e in manifest.objects}
    return {}


def fetch_database_files(
    manifest: BackupManifest, store: ObjectStore, dest: Path
) -> dict[str, Path]:
    """Download the set's database files into `dest`, each checked against its SHA-256."""
    if manifest.database is None:
        raise BackupError(f"backup {manifest.id} holds no database")
    files: dict[str, Path] = {}
    for entry in manifest.database.files:
        path = store.download_file(_set_key(manifest.id, f"db/{entry.name}"), dest / entry.name)
        if sha256_of(path) != entry.sha256:
            raise BackupError(f"backup file {entry.name} of {manifest.id} is damaged (sha256)")
        files[entry.name] = path
    return files


def restore_database(
    manifest: BackupManifest,
    store: ObjectStore,
    *,
    settings: Settings,
    database_url: str | None = None,
    pgdata: Path | None = None,
    wal_archive: Path | None = None,
    target_time: dt.datetime | None = None,
    work_dir: Path | None = None,
) -> None:
    """Restore the database half: a dump into the empty database at `database_url`, a base
    backup into the new data directory `pgdata` (start Postgres on it afterwards)."""
    if manifest.database is None:
        raise BackupError(f"backup {manifest.id} holds no database")
    method = manifest.database.method
    if method == "dump" and database_url is None:
        raise BackupError("a dump restores into a database: give --database-url (new, empty)")
    if method == "base" and pgdata is None:
        raise BackupError("a base backup restores into a data directory: give --pgdata (new)")
    if method == "dump" and (wal_archive is not None or target_time is not None):
        raise BackupError("point-in-time recovery needs a base backup (--method base)")
    with tempfile.TemporaryDirectory(prefix="cf-restore-db-", dir=work_dir) as tmp:
        files = fetch_database_files(manifest, store, Path(tmp))
        if database_url is not None:
            tools = PgTools.for_server(database_url, bin_dir=settings.pg_bin_dir)
            restore_dump(database_url, files["dump.pgc"], tools)
        elif pgdata is not None:
            prepare_base_restore(files, pgdata, wal_archive=wal_archive, target_time=target_time)


def restore_media(
    manifest: BackupManifest,
    store: ObjectStore,
    media: ObjectStore,
    *,
    overwrite: bool = False,
    workers: int = 8,
) -> CopyStats:
    """Restore the set's objects into the media store (checksummed; present ones kept)."""
    return restore_objects(manifest.objects, store, media, overwrite=overwrite, workers=workers)


def summary(manifest: BackupManifest) -> str:
    """One JSON line for logs and the CLI."""
    db = manifest.database
    return json.dumps(
        {
            "backup": manifest.id,
            "method": db.method if db else None,
            "tables": len(db.table_counts) if db else 0,
            "rows": sum(db.table_counts.values()) if db else 0,
            "objects": len(manifest.objects),
            "objects_copied": manifest.objects_copied,
            "object_bytes": sum(e.size for e in manifest.objects),
            "durations_s": manifest.durations_s,
        }
    )
