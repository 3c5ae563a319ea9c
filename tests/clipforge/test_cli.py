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


def test_keys_list_and_revoke_without_sql(db: Pool, database_url: str) -> None:
    first = _run(database_url, "keys", "create", "--name", "old client").stdout.strip()
    second = _run(database_url, "keys", "create", "--name", "new client").stdout.strip()
    with db.connection() as conn:
        old = authenticate(conn, raw_key=first)
    assert old is not None

    listed = _run(database_url, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split("\t")[3] for line in lines] == ["old client", "new client"]
    assert lines[0].startswith(f"{old.id}\t{first[:10]}…\t")
    assert first not in listed.stdout and second not in listed.stdout  # never the key itself

    revoked = _run(database_url, "keys", "revoke", str(old.id))
    assert revoked.returncode == 0 and revoked.stdout.strip() == f"revoked key {old.id}"
    with db.connection() as conn:
        assert authenticate(conn, raw_key=first) is None
        assert authenticate(conn, raw_key=second) is not None
    again = _run(database_url, "keys", "revoke", str(old.id))
    assert again.returncode == 0 and "already revoked" in again.stdout

    active = _run(database_url, "keys", "list").stdout.splitlines()
    assert [line.split("\t")[3] for line in active] == ["new client"]
    every = _run(database_url, "keys", "list", "--all").stdout.splitlines()
    assert len(every) == 2 and "\trevoked 20" in every[0]

    unknown = _run(database_url, "keys", "revoke", "00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == 2 and "no API key" in unknown.stderr
    malformed = _run(database_url, "keys", "revoke", "cf_abc")
    assert malformed.returncode == 2 and "not a key id" in malformed.stderr


def test_a_stop_signal_inside_an_extension_import_counts_as_interrupted() -> None:
    """`clipforge process` answers 130 "interrupted" to SIGTERM; when the signal lands while
    ctranslate2's extension initializes, Python hands back an ImportError raised from the
    KeyboardInterrupt (seen in CI), which must read the same, while other errors stay errors."""
    from clipforge.terminal import interrupted

    def import_interrupted() -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise ImportError("initialization failed") from exc

    def failing_while_handling() -> None:
        try:
            import_interrupted()
        except ImportError:
            raise RuntimeError("cleanup failed") from None  # the chain is still the context

    for raiser in (import_interrupted, failing_while_handling):
        try:
            raiser()
        except Exception as exc:
            assert interrupted(exc), raiser
    assert not interrupted(ImportError("initialization failed"))
    try:
        raise ValueError("bad") from OSError("disk")
    except ValueError as exc:
        assert not interrupted(exc)
