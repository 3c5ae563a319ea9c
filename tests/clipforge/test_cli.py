"""`clipforge keys create` and `clipforge db migrate` against the real database."""

from __future__ import annotations

import os
import subprocess
import sys

from clipforge.db.pool import Pool
from clipforge.db.repo.api_keys import authenticate, hash_key


def _run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "clipforge.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_keys_create_prints_the_key_once_and_stores_only_its_hash(
    db: Pool, database_url: str
) -> None:
    result = _run(database_url, "keys", "create", "--name", "ci'; DROP TABLE api_keys; --")
    assert result.returncode == 0, result.stderr
    raw = result.stdout.strip()
    assert raw.startswith("cf_") and len(raw) > 40
    with db.connection() as conn:
        rows = conn.execute("SELECT name, key_hash, prefix FROM api_keys").fetchall()
        key = authenticate(conn, raw_key=raw)
        assert authenticate(conn, raw_key=raw + "x") is None
    assert len(rows) == 1
    assert rows[0]["name"] == "ci'; DROP TABLE api_keys; --"  # stored literally, table intact
    assert rows[0]["key_hash"] == hash_key(raw) and raw not in str(rows[0])
    assert key is not None and key.name == rows[0]["name"]


def test_keys_create_rejects_an_empty_name(database_url: str) -> None:
    result = _run(database_url, "keys", "create", "--name", "   ")
    assert result.returncode == 2 and "1-200 characters" in result.stderr


def test_db_migrate_is_idempotent(database_url: str) -> None:
    result = _run(database_url, "db", "migrate")
    assert result.returncode == 0 and result.stdout.strip() == "schema up to date"


def test_version_flag_prints_the_installed_version() -> None:
    from importlib.metadata import version

    import clipforge

    result = subprocess.run(
        [sys.executable, "-m", "clipforge.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"clipforge {version('clipforge')}"
    assert clipforge.__version__ == version("clipforge")
