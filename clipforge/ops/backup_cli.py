"""`clipforge backup ...`: create, list, restore and verify backup sets (docs/operations.md)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import typer

from clipforge.errors import ClipForgeError
from clipforge.settings import Settings, get_settings

backup_app = typer.Typer(
    help="Backups of the database and the media bucket (docs/operations.md).",
    no_args_is_help=True,
)


@contextmanager
def _errors() -> Iterator[None]:
    """A ClipForge error ends the command with one `error:` line and exit code 1."""
    try:
        yield
    except ClipForgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _settings() -> Settings:
    with _errors():
        return get_settings()
    raise AssertionError  # pragma: no cover (mypy: _errors re-raises)


def _database_url(settings: Settings) -> str:
    from clipforge.db.embedded import resolve_database_url

    return resolve_database_url(settings)


def _backup_id(store_ids: Callable[[], list[str]], backup_id: str) -> str:
    if backup_id != "latest":
        return backup_id
    ids = store_ids()
    if not ids:
        typer.echo("error: there is no backup yet", err=True)
        raise typer.Exit(1)
    return ids[-1]


@backup_app.command("create")
def create(
    method: Annotated[
        Literal["dump", "base"],
        typer.Option(help="dump: pg_dump (one database); base: pg_basebackup (for PITR)."),
    ] = "dump",
    database: Annotated[bool, typer.Option(help="Back up the database.")] = True,
    objects: Annotated[bool, typer.Option(help="Back up the media objects.")] = True,
    prefix: Annotated[
        list[str] | None, typer.Option(help="Object key prefix (repeatable; default: all media).")
    ] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="Scratch folder for the database files (default: TMPDIR).")
    ] = None,
) -> None:
    """Back up the database (DATABASE_URL), then the media objects, into the backup store."""
    from clipforge.ops.backup import DEFAULT_PREFIXES, backup_store, create_backup, summary
    from clipforge.storage import create_store

    settings = _settings()
    with _errors():
        manifest = create_backup(
            settings,
            _database_url(settings) if database else None,
            media=create_store(settings),
            store=backup_store(settings),
            method=method,
            prefixes=(tuple(prefix or DEFAULT_PREFIXES) if objects else ()),
            work_dir=work_dir,
        )
    sys.stdout.write(summary(manifest) + "\n")


@backup_app.command("list")
def list_() -> None:
    """List the complete backup sets, oldest first, one JSON line each."""
    from clipforge.ops.backup import backup_store, list_backups, load_manifest, summary

    settings = _settings()
    with _errors():
        store = backup_store(settings)
        for backup_id in list_backups(store):
            sys.stdout.write(summary(load_manifest(store, backup_id)) + "\n")


@backup_app.command("restore")
def restore(
    backup_id: Annotated[str, typer.Argument(help="Backup id, or `latest`.")],
    database_url: Annotated[
        str | None, typer.Option(help="dump: the new, empty database to restore into.")
    ] = None,
    pgdata: Annotated[
        Path | None, typer.Option(help="base: the new data directory to lay the backup out in.")
    ] = None,
    wal_archive: Annotated[
        Path | None, typer.Option(help="base: the WAL archive folder to replay from.")
    ] = None,
    fetch_wal: Annotated[
        bool,
        typer.Option(help="base: first download the WAL shipped by wal-sync into --wal-archive."),
    ] = False,
    target_time: Annotated[
        dt.datetime | None,
        typer.Option(
            help="base: recover up to this moment (needs --wal-archive).",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"],
        ),
    ] = None,
    objects: Annotated[bool, typer.Option(help="Copy the media objects back.")] = True,
    overwrite: Annotated[
        bool, typer.Option(help="Replace objects already present (default: keep them).")
    ] = False,
) -> None:
    """Restore a set: the database (into --database-url or --pgdata) and the media objects
    (into S3_BUCKET / the local store). Stop the API and the workers first."""
    from clipforge.ops.backup import (
        backup_store,
        list_backups,
        load_manifest,
        restore_database,
        restore_media,
    )
    from clipforge.storage import create_store

    settings = _settings()
    with _errors():
        store = backup_store(settings)
        manifest = load_manifest(store, _backup_id(lambda: list_backups(store), backup_id))
        if fetch_wal:
            from clipforge.ops.wal import fetch_wal as fetch

            if wal_archive is None:
                typer.echo("error: --fetch-wal needs --wal-archive (where to put it)", err=True)
                raise typer.Exit(2)
            typer.echo(f"fetched {fetch(store, wal_archive)} WAL file(s)", err=True)
        if database_url is not None or pgdata is not None:
            restore_database(
                manifest,
                store,
                settings=settings,
                database_url=database_url,
                pgdata=pgdata,
                wal_archive=wal_archive,
                target_time=target_time,
            )
            typer.echo(f"database of {manifest.id} restored", err=True)
        if objects:
            stats = restore_media(manifest, store, create_store(settings), overwrite=overwrite)
            typer.echo(
                f"objects of {manifest.id}: {stats.copied} restored "
                f"({stats.bytes_copied} bytes), {stats.skipped} already present",
                err=True,
            )
    if pgdata is not None:
        typer.echo(f"next: start Postgres on {pgdata}; it recovers, then accepts writes", err=True)


@backup_app.command("verify")
def verify(
    backup_id: Annotated[
        str | None, typer.Argument(help="Also compare row counts with this set (or `latest`).")
    ] = None,
) -> None:
    """Check the database (DATABASE_URL) and media store agree: every object a row references
    exists; with a backup id, also that every table has the set's row count. Exit 1 if not."""
    import psycopg

    from clipforge.ops.backup import backup_store, list_backups, load_manifest
    from clipforge.ops.verify import count_differences, missing_objects
    from clipforge.storage import create_store

    settings = _settings()
    problems: list[str] = []
    with _errors(), psycopg.connect(_database_url(settings)) as conn:
        checked, missing = missing_objects(conn, create_store(settings))
        problems += [f"missing object {r.key} (needed by {r.row})" for r in missing]
        if backup_id is not None:
            store = backup_store(settings)
            manifest = load_manifest(store, _backup_id(lambda: list_backups(store), backup_id))
            if manifest.database is None:
                typer.echo(
                    f"backup {manifest.id} holds no database: no counts to compare", err=True
                )
            else:
                expected = manifest.database.table_counts
                for table, (want, got) in count_differences(conn, expected).items():
                    problems.append(f"table {table}: {got} rows, backup {manifest.id} had {want}")
    for line in problems:
        typer.echo(line, err=True)
    typer.echo(f"{checked} object references checked, {len(problems)} problem(s)")
    raise typer.Exit(1 if problems else 0)


@backup_app.command("wal-config")
def wal_config(
    archive: Annotated[Path, typer.Option(help="The WAL archive folder (a separate volume).")],
    timeout_s: Annotated[int, typer.Option(help="archive_timeout: the RPO bound.")] = 60,
) -> None:
    """Print the postgresql.conf lines that archive WAL into ARCHIVE (point-in-time recovery)."""
    from clipforge.ops.pg_backup import archive_command

    command = archive_command(archive).replace("'", "''")
    sys.stdout.write(
        "wal_level = replica\narchive_mode = on\n"
        f"archive_command = '{command}'\narchive_timeout = {timeout_s}\n"
    )


@backup_app.command("wal-sync")
def wal_sync(
    archive: Annotated[Path, typer.Option(help="The WAL archive folder archive_command fills.")],
) -> None:
    """Copy new WAL files from ARCHIVE to the backup store (run every few minutes)."""
    from clipforge.ops.backup import backup_store
    from clipforge.ops.wal import sync_wal

    settings = _settings()
    with _errors():
        sent = sync_wal(archive, backup_store(settings))
    typer.echo(f"shipped {sent} WAL file(s)", err=True)
