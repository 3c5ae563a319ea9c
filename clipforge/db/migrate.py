"""Versioned schema migrations.

Migrations are the numbered `.sql` files beside this module (`0001_init.sql`, ...). Each runs
in its own transaction and is recorded with a checksum in `schema_migrations`. A session-level
advisory lock serialises concurrent runs, so two processes starting at once (two API replicas,
say) apply each migration exactly once; the second simply finds nothing left to do.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from clipforge.errors import ConfigError

log = logging.getLogger(__name__)

# Arbitrary constant identifying "clipforge migrations" among advisory locks.
_LOCK_ID = 0x0C1F0F06E

#: Checksums that databases recorded for a file before an edit of its comments only (the
#: statements are the same), accepted like the file's own: 0001 cited a design note that is not
#: in the repository.
_EARLIER_CHECKSUMS: dict[int, frozenset[str]] = {
    1: frozenset({"fa84c6d3be74e51fa6f1d918a8b4fa5600d2617b3baad41a03f27aff21eb0d8f"}),
}


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file.

    Attributes:
        version: the number in the file name.
        name: the file name.
        sql: the statements.
        checksum: sha256 of the statements, to detect an applied file that was edited later.
    """

    version: int
    name: str
    sql: str
    checksum: str


def load_migrations() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    folder = resources.files("clipforge.db") / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        text = entry.read_text(encoding="utf-8")
        version = int(entry.name.split("_", 1)[0])
        digest = hashlib.sha256(text.encode()).hexdigest()
        found.append(Migration(version, entry.name, text, digest))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigError(f"duplicate migration versions: {versions}")
    return found


def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; return the names applied by this call (empty when up to date)."""
    applied_now: list[str] = []
    with psycopg.connect(
        database_url, autocommit=True, application_name="clipforge-migrate"
    ) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version    integer PRIMARY KEY,
                       name       text NOT NULL,
                       checksum   text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            rows = conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
            done = {int(r[0]): (str(r[1]), str(r[2])) for r in rows}
            for migration in load_migrations():
                if migration.version in done:
                    _check_unchanged(migration, done[migration.version])
                    continue
                with conn.transaction():
                    conn.execute(sql.SQL(migration.sql))
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                log.info("applied migration", extra={"migration": migration.name})
                applied_now.append(migration.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


def _check_unchanged(migration: Migration, recorded: tuple[str, str]) -> None:
    name, checksum = recorded
    if checksum != migration.checksum and checksum not in _EARLIER_CHECKSUMS.get(
        migration.version, frozenset()
    ):
        raise ConfigError(
            f"migration {migration.name} was edited after it was applied as {name}; "
            "add a new migration instead of changing an applied one"
        )
