"""Helpers of the backup tests: test-owned Postgres servers to restore into, and to archive from."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql
from typer.testing import CliRunner

from clipforge.cli import app
from clipforge.ops.pg_backup import archive_command
from clipforge.settings import get_settings
from tests.utils.servers import PostgresServer
from tests.utils.wait import wait_until

# PostgresServer runs Postgres as this user when the tests run as root.
SERVER_USER = "pgserver"


def give_to_server(path: Path) -> None:
    """Make `path` (recursively) the server user's, as Postgres requires of its files."""
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            shutil.chown(name, SERVER_USER, SERVER_USER)


def empty_server() -> PostgresServer:
    """A fresh, stopped server whose data directory is absent (a restore lays it out)."""
    server = PostgresServer()
    shutil.rmtree(server.pgdata)
    return server


def wal_archive() -> Path:
    """An empty WAL archive folder the server user can write (under /tmp, like the servers)."""
    path = Path(tempfile.mkdtemp(prefix="cf-wal-archive-"))
    give_to_server(path)
    return path


def enable_archiving(server: PostgresServer, archive: Path) -> None:
    """Turn on WAL archiving into `archive` the way the runbook does (ALTER SYSTEM, restart)."""
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET archive_mode = 'on'")
        conn.execute(
            sql.SQL("ALTER SYSTEM SET archive_command = {}").format(
                sql.Literal(archive_command(archive))
            )
        )
    server.stop()
    server.start()


def archive_current_wal(url: str, *, timeout_s: float = 30.0) -> None:
    """Close the current WAL segment and wait until the archiver has copied it away."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
        assert row is not None
        segment = str(row[0])

        def archived() -> bool:
            done = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
            return done is not None and done[0] is not None and str(done[0]) >= segment

        wait_until(archived, timeout_s=timeout_s, what=f"segment {segment} archived")


def wait_promoted(url: str, *, timeout_s: float = 60.0) -> None:
    """Block until the server at `url` has finished recovery and accepts writes."""
    with psycopg.connect(url, autocommit=True) as conn:

        def promoted() -> bool:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return row is not None and row[0] is False

        wait_until(promoted, timeout_s=timeout_s, what="the restored server to finish recovery")


def invoke_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run `clipforge ARGS` in-process with `env` added to the environment; (exit code, stdout,
    stderr). An exception other than the command's exit is re-raised."""
    get_settings.cache_clear()  # each command reads the environment it is given
    try:
        result = CliRunner().invoke(app, list(args), env=env)
    finally:
        get_settings.cache_clear()
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr
