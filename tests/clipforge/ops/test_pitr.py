"""Point-in-time recovery: base backup + WAL archive, restored to a moment between two writes.

A test-owned Postgres (the pgserver wheel's build) archives its WAL with the runbook's
`archive_command`; `clipforge.ops` takes the base backup, ships the archive to the backup store
(the host and its archive folder are then lost), fetches it back and lays the backup out for a
fresh server with a `recovery_target_time`; the restored server must hold exactly the rows
committed before it.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from clipforge.ops.backup import backup_store, create_backup, load_manifest, restore_database
from clipforge.ops.pgtools import BackupError
from clipforge.ops.wal import fetch_wal, sync_wal
from clipforge.settings import Settings, load_settings
from clipforge.storage import LocalStore
from tests.utils.restores import (
    archive_current_wal,
    empty_server,
    enable_archiving,
    give_to_server,
    wait_promoted,
    wal_archive,
)
from tests.utils.servers import PostgresServer


@pytest.fixture()
def archiving_server() -> Iterator[tuple[PostgresServer, Path]]:
    """A started test-owned server archiving its WAL into a fresh folder."""
    server, archive = PostgresServer(), wal_archive()
    try:
        server.start()
        enable_archiving(server, archive)
        yield server, archive
    finally:
        server.close()
        shutil.rmtree(archive, ignore_errors=True)


def _write(url: str, name: str) -> dt.datetime:
    """Commit one row; the server's clock right after the commit."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO notes (name) VALUES (%s)", (name,))
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    stamp: dt.datetime = row[0]
    return stamp


def test_restore_to_a_time_between_two_writes(
    archiving_server: tuple[PostgresServer, Path], tmp_path: Path
) -> None:
    server, archive = archiving_server
    settings: Settings = load_settings(environment="test", backup_dir=tmp_path / "backups")
    store = backup_store(settings)
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, name text NOT NULL)")
    _write(server.url, "before the backup")
    manifest = create_backup(
        settings,
        server.url,
        media=LocalStore(tmp_path / "media"),
        store=store,
        method="base",
        prefixes=(),
    )
    assert manifest.database is not None and manifest.database.method == "base"
    assert manifest.database.table_counts == {"notes": 1}
    assert {f.name for f in manifest.database.files} >= {"base.tar.gz", "pg_wal.tar.gz"}

    _write(server.url, "after the backup, before the target")
    target = _write(server.url, "marker")  # the target: after this commit...
    time.sleep(0.01)
    _write(server.url, "after the target")  # ...and before this one
    archive_current_wal(server.url)
    assert sync_wal(archive, store) >= 2  # `clipforge backup wal-sync`: the archive leaves the host
    server.stop()  # the primary is lost, and its host with the archive folder:
    shutil.rmtree(archive)
    fetched = wal_archive()
    assert fetch_wal(store, fetched) >= 2
    give_to_server(fetched)

    restored = empty_server()
    try:
        with pytest.raises(BackupError, match="needs the WAL archive"):
            restore_database(
                load_manifest(store, manifest.id),
                store,
                settings=settings,
                pgdata=restored.pgdata,
                target_time=target,
            )
        started = time.perf_counter()
        restore_database(
            load_manifest(store, manifest.id),
            store,
            settings=settings,
            pgdata=restored.pgdata,
            wal_archive=fetched,
            target_time=target,
        )
        give_to_server(restored.pgdata)
        restored.start()
        wait_promoted(restored.url)
        took = time.perf_counter() - started
        with psycopg.connect(restored.url) as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM notes ORDER BY id").fetchall()]
            conn.execute("INSERT INTO notes (name) VALUES ('written after the restore')")
        assert names == ["before the backup", "after the backup, before the target", "marker"]
        print(f"\nPITR restore (base backup + WAL replay to target): {took:.2f} s")
    finally:
        restored.close()
        shutil.rmtree(fetched, ignore_errors=True)
