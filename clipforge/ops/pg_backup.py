"""Postgres backups: a logical dump, or a base backup that WAL archiving turns into PITR.

Two methods, because they answer different questions (docs/operations.md, "Backup and
recovery"):

- **base** (`pg_basebackup`, tar, WAL streamed into the backup): a physical copy of the whole
  server. With `archive_command` copying every finished WAL segment away, a restore replays the
  archive up to any moment (`recovery_target_time`): the production method, RPO = the WAL not
  yet archived (at most `archive_timeout`).
- **dump** (`pg_dump --format=custom` in one snapshot): one database, portable across major
  versions and machines, restorable into a database that already runs. The method for the
  embedded database and small installs, and a second, independent copy beside the physical one.
"""

from __future__ import annotations

import datetime as dt
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from clipforge.db.repo import ops as ops_repo
from clipforge.ops.pgtools import BackupError, PgTools

BASE_FILES = ("base.tar.gz", "pg_wal.tar.gz", "backup_manifest")
DUMP_FILE = "dump.pgc"


def table_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Row count of every table of the `public` schema, by name."""
    return {name: ops_repo.row_count(conn, name) for name in ops_repo.public_tables(conn)}


@dataclass(frozen=True, slots=True)
class DatabaseBackup:
    """What a database backup step produced.

    Attributes:
        files: the files written, in the order a restore needs them.
        table_counts: rows per table; exact for a dump (counted in the dump's own snapshot),
            taken just before the copy for a base backup (the copy may include later commits).
        counts_exact: whether `table_counts` describe exactly the backed-up data.
        server_version: the server's version string.
    """

    files: list[Path]
    table_counts: dict[str, int]
    counts_exact: bool
    server_version: str


def dump_database(url: str, out_dir: Path, tools: PgTools) -> DatabaseBackup:
    """`pg_dump --format=custom` of the database at `url`, and its row counts, in one snapshot.

    The counting transaction exports its snapshot and pg_dump reads the same one, so the counts
    describe exactly what the dump holds even while the application keeps writing.
    """
    out = out_dir / DUMP_FILE
    with psycopg.connect(url, connect_timeout=10) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = ops_repo.export_snapshot(conn)
        version = ops_repo.server_version(conn)
        counts = table_counts(conn)
        tools.run("pg_dump", "--format=custom", f"--snapshot={snapshot}", f"--file={out}", url=url)
        conn.rollback()
    return DatabaseBackup(
        files=[out], table_counts=counts, counts_exact=True, server_version=version
    )


def base_backup(url: str, out_dir: Path, tools: PgTools, *, label: str) -> DatabaseBackup:
    """`pg_basebackup` of the server at `url` as gzipped tars, with the WAL it needs streamed in.

    The backup alone restores the server as of its end; with the WAL archive after it, to any
    later moment. Needs a role with REPLICATION and a `replication` line in pg_hba.conf.
    """
    with psycopg.connect(url, connect_timeout=10) as conn:
        counts = table_counts(conn)
        version = ops_repo.server_version(conn)
    tools.run(
        "pg_basebackup",
        f"--pgdata={out_dir}",
        "--format=tar",
        "--gzip",
        "--wal-method=stream",
        "--checkpoint=fast",
        f"--label={label}",
        "--manifest-checksums=SHA256",
        url=url,
    )
    files = [out_dir / name for name in BASE_FILES]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise BackupError(f"pg_basebackup wrote no {', '.join(missing)} in {out_dir}")
    extra = sorted(p.name for p in out_dir.iterdir() if p.name not in BASE_FILES)
    if extra:  # one tar per tablespace: ClipForge creates none, and the restore would miss them
        raise BackupError(f"tablespaces are not supported by this backup ({', '.join(extra)})")
    return DatabaseBackup(
        files=files, table_counts=counts, counts_exact=False, server_version=version
    )


def _empty_target(url: str) -> None:
    with psycopg.connect(url, connect_timeout=10) as conn:
        tables = ops_repo.public_tables(conn)
    if tables:
        raise BackupError(
            "the target database already has tables; restore into a new, empty database "
            "(CREATE DATABASE ...) so nothing stored there is overwritten"
        )


def restore_dump(url: str, dump: Path, tools: PgTools, *, jobs: int = 2) -> None:
    """`pg_restore` a dump into the empty database at `url` (refused when it has tables).

    Ownership and grants are left out: the restoring role owns everything, so a dump restores
    on a server whose roles differ from the source's.
    """
    _empty_target(url)
    dbname = conninfo_to_dict(url).get("dbname") or "postgres"
    tools.run(
        "pg_restore",
        f"--dbname={dbname}",
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        f"--jobs={max(1, jobs)}",
        str(dump),
        url=url,
    )


def archive_command(archive_dir: Path) -> str:
    """`archive_command` copying each finished WAL segment into `archive_dir`.

    Never overwrites a segment already there (a second server archiving into the same folder
    fails loudly instead of corrupting it), and renames into place, so a half-copied segment is
    never taken for a whole one.
    """
    d = str(archive_dir)
    return f"test ! -f '{d}/%f' && cp '%p' '{d}/%f.part' && mv '{d}/%f.part' '{d}/%f'"


def restore_command(archive_dir: Path) -> str:
    """`restore_command` reading segments back from `archive_dir`."""
    return f"cp '{archive_dir}/%f' '%p'"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(dest, filter="data")


def prepare_base_restore(
    files: dict[str, Path],
    pgdata: Path,
    *,
    wal_archive: Path | None = None,
    target_time: dt.datetime | None = None,
) -> None:
    """Lay out a base backup in `pgdata` (absent or empty) so that starting Postgres on it
    recovers: to the end of the archive, to `target_time` when given, or (no archive) to the end
    of the backup.

    The restored server does not archive (`archive_mode = off`): a restore or drill must never
    write into the archive of the server it came from. Turn archiving back on (ALTER SYSTEM,
    restart) once the restore is checked and the server becomes the primary.
    """
    if target_time is not None and wal_archive is None:
        raise BackupError("a recovery target time needs the WAL archive (--wal-archive)")
    if target_time is not None and target_time.tzinfo is None:
        raise BackupError("the recovery target time needs a time zone, e.g. 2026-12-01T18:00:00Z")
    if pgdata.exists() and any(pgdata.iterdir()):
        raise BackupError(f"{pgdata} is not empty; restore into a new data directory")
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata.chmod(0o700)
    _extract(files["base.tar.gz"], pgdata)
    _extract(files["pg_wal.tar.gz"], pgdata / "pg_wal")
    lines = ["", "# written by clipforge backup restore", "archive_mode = 'off'"]
    if wal_archive is not None:
        lines.append(f"restore_command = {_quote(restore_command(wal_archive))}")
        lines.append("recovery_target_action = 'promote'")
        if target_time is not None:
            lines.append(f"recovery_target_time = {_quote(target_time.isoformat())}")
        (pgdata / "recovery.signal").touch()
    with (pgdata / "postgresql.auto.conf").open("a") as conf:
        conf.write("\n".join(lines) + "\n")
