"""Migrations: from empty, again, concurrently, and refusing an edited applied file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from clipforge.db.migrate import load_migrations, migrate
from clipforge.errors import ConfigError

_REPO = Path(__file__).resolve().parents[3]
_TABLES = {
    "api_keys",
    "videos",
    "jobs",
    "transcripts",
    "transcript_segments",
    "transcript_words",
    "clips",
    "clip_word_edits",
    "exports",
    "webhooks",
    "webhook_deliveries",
    "idempotency_keys",
    "schema_migrations",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_from_empty_then_again(fresh_database_url: str) -> None:
    assert _tables(fresh_database_url) == set()
    applied = migrate(fresh_database_url)
    assert applied == [m.name for m in load_migrations()] and applied[0] == "0001_init.sql"
    assert _tables(fresh_database_url) == _TABLES
    assert migrate(fresh_database_url) == []


def test_two_processes_at_once(fresh_database_url: str) -> None:
    env = os.environ | {"DATABASE_URL": fresh_database_url, "PYTHONPATH": str(_REPO)}
    cmd = [sys.executable, "-m", "clipforge.cli", "db", "migrate"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    stdout = sorted(o[0].strip() for o in outputs)
    names = [m.name for m in load_migrations()]
    assert stdout[0] == f"applied {len(names)} migration(s): {', '.join(names)}"
    assert stdout[1] == "schema up to date"
    with psycopg.connect(fresh_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (
            len(load_migrations()),
        )


def test_edited_applied_migration_is_refused(fresh_database_url: str) -> None:
    migrate(fresh_database_url)
    with psycopg.connect(fresh_database_url) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'tampered'")
    with pytest.raises(ConfigError, match="edited after it was applied"):
        migrate(fresh_database_url)


def test_comment_only_edit_keeps_migrated_databases(fresh_database_url: str) -> None:
    """A database migrated before 0001's comment was edited recorded the old checksum."""
    migrate(fresh_database_url)
    before = "fa84c6d3be74e51fa6f1d918a8b4fa5600d2617b3baad41a03f27aff21eb0d8f"
    assert load_migrations()[0].checksum != before
    with psycopg.connect(fresh_database_url) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = %s WHERE version = 1", (before,))
    assert migrate(fresh_database_url) == []
    with psycopg.connect(fresh_database_url) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = %s WHERE version = 2", (before,))
    with pytest.raises(ConfigError, match=r"0002.*edited after it was applied"):
        migrate(fresh_database_url)


def test_every_list_and_claim_path_has_an_index(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        indexes = {
            r[0]
            for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        }
    assert {
        "jobs_claim_idx",
        "jobs_lease_idx",
        "videos_owner_page_idx",
        "clips_video_page_idx",
        "exports_clip_page_idx",
        "webhook_deliveries_page_idx",
    } <= indexes
