"""`clipforge backup` on the embedded-style setup: a database on the session's Postgres (its own
major version, so the client programs are looked up for it), media and backups in local
folders. Create, list, restore into a new database, restore lost objects, verify, and the
refusals: a non-empty target database, a damaged backup copy."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from clipforge.db.migrate import migrate
from clipforge.db.repo.api_keys import create_api_key
from clipforge.db.repo.videos import create_video, update_video
from clipforge.storage import LocalStore
from clipforge.storage.keys import audio_key, original_key
from tests.conftest import temporary_database
from tests.utils.restores import invoke_cli


@pytest.fixture()
def second_database(admin_database_url: str) -> Iterator[str]:
    """Another empty database on the session's server, to restore into."""
    with temporary_database(admin_database_url) as url:
        yield url


def test_create_list_restore_verify(
    fresh_database_url: str, second_database: str, tmp_path: Path
) -> None:
    media = LocalStore(tmp_path / "media")
    migrate(fresh_database_url)
    video_id = uuid.uuid4()
    with psycopg.connect(fresh_database_url, row_factory=dict_row) as conn:
        key, _ = create_api_key(conn, name="cli")
        create_video(conn, owner_key_id=key.id, source_kind="upload", video_id=video_id)
        update_video(conn, video_id=video_id, original_key=original_key(video_id, "mp4"))
    media.put_bytes(original_key(video_id, "mp4"), b"original bytes")
    media.put_bytes(audio_key(video_id), b"flac bytes")
    env = {
        "DATABASE_URL": fresh_database_url,
        "LOCAL_STORAGE_DIR": str(tmp_path / "media"),
        "BACKUP_DIR": str(tmp_path / "backups"),
        "DATA_DIR": str(tmp_path / "data"),
        "ENVIRONMENT": "test",
    }
    code, out, err = invoke_cli(env, "backup", "create")
    assert code == 0, err
    made = json.loads(out)
    assert made["method"] == "dump" and made["objects"] == made["objects_copied"] == 2
    code, out, err = invoke_cli(env, "backup", "create", "--no-database")
    objects_only = json.loads(out)
    assert code == 0 and objects_only["method"] is None
    assert objects_only["objects"] == 2 and objects_only["objects_copied"] == 0  # incremental
    code, out, _ = invoke_cli(env, "backup", "list")
    listed = [json.loads(line)["backup"] for line in out.splitlines()]
    assert listed == [made["backup"], objects_only["backup"]]

    restore = ("backup", "restore", made["backup"], "--database-url", second_database)
    code, _, err = invoke_cli(env, *restore, "--no-objects")
    assert code == 0, err
    code, _, err = invoke_cli(env, *restore)
    assert code == 1 and "error: the target database already has tables" in err
    code, _, err = invoke_cli(env, "backup", "restore", "latest", "--database-url", second_database)
    assert code == 1 and f"error: backup {objects_only['backup']} holds no database" in err

    media.delete(audio_key(video_id))  # a lost object; the other one is still there
    restored_env = env | {"DATABASE_URL": second_database}
    code, out, err = invoke_cli(restored_env, "backup", "verify", made["backup"])
    assert code == 1 and f"missing object {audio_key(video_id)}" in err
    code, _, err = invoke_cli(restored_env, "backup", "restore", "latest")
    assert code == 0 and "1 restored" in err and "1 already present" in err
    assert media.get_bytes(audio_key(video_id)) == b"flac bytes"
    code, out, err = invoke_cli(restored_env, "backup", "verify", made["backup"])
    assert code == 0, err
    assert "2 object references checked, 0 problem(s)" in out
    with psycopg.connect(second_database) as conn:  # a count that differs is a problem too
        conn.execute("DELETE FROM api_keys")
    code, _, err = invoke_cli(restored_env, "backup", "verify", made["backup"])
    assert code == 1 and f"table api_keys: 0 rows, backup {made['backup']} had 1" in err

    # A damaged mirror copy is refused before anything is written for it.
    mirror = tmp_path / "backups" / "objects" / audio_key(video_id)
    mirror.write_bytes(b"flac bytez")
    media.delete(audio_key(video_id))
    code, _, err = invoke_cli(restored_env, "backup", "restore", "latest")
    assert code == 1 and "is damaged" in err
    assert media.head(audio_key(video_id)) is None


def test_wal_config_prints_the_archive_settings() -> None:
    code, out, _ = invoke_cli({}, "backup", "wal-config", "--archive", "/wal-archive")
    assert code == 0
    lines = dict(line.split(" = ", 1) for line in out.splitlines())
    assert lines["archive_mode"] == "on" and lines["archive_timeout"] == "60"
    assert lines["archive_command"].startswith("'test ! -f ''/wal-archive/%f'' && cp")
