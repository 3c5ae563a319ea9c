"""Restore drill: data made through the API and the worker, backed up, lost, restored, checked.

A test-owned Postgres (the pgserver wheel's build) and a drill-owned bucket on the session's
S3-compatible server hold one speech video processed end to end (upload through the API,
import -> transcribe -> detect on the worker, an export requested through the API and
rendered). `clipforge.ops` backs it up twice (base backup + objects; logical dump, whose object
pass must copy nothing new), the server and its data directory are deleted and the media
prefixes wiped, and both sets are restored into a fresh server. Every table must have its row
count, every object a row references must exist with its original content, and the API must
serve the restored video.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from clipforge.db.migrate import migrate
from clipforge.db.pool import Pool, create_pool
from clipforge.ops.backup import (
    backup_store,
    create_backup,
    load_manifest,
    restore_database,
    restore_media,
)
from clipforge.ops.objects import list_objects
from clipforge.ops.pg_backup import table_counts
from clipforge.ops.pgtools import BackupError
from clipforge.ops.verify import missing_objects
from clipforge.settings import Settings
from clipforge.storage import S3Store
from pipelines.config import PipelineConfig
from pipelines.engine.worker import PipelineWorker
from serve_apps.api.app import create_app
from serve_apps.api.deps import ApiDeps
from tests.utils.factories import make_key
from tests.utils.restores import empty_server, give_to_server, invoke_cli, wait_promoted
from tests.utils.servers import PostgresServer

_MEDIA = ("videos/", "uploads/")


@pytest.fixture()
def source_server() -> Iterator[PostgresServer]:
    """The drill's primary: a migrated test-owned server (deleted by the drill itself)."""
    server = PostgresServer()
    try:
        server.start()
        migrate(server.url)
        yield server
    finally:
        server.close()


@pytest.fixture()
def drill_settings(
    pipeline_settings: Settings, source_server: PostgresServer, redis_url: str
) -> Settings:
    """The pipeline's S3 server with two drill-owned buckets (media, backups) and the server."""
    tag = uuid.uuid4().hex[:8]
    settings = pipeline_settings.model_copy(
        update={
            "database_url": source_server.url,
            "redis_url": redis_url,
            "s3_bucket": f"cf-drill-media-{tag}",
            "backup_bucket": f"cf-drill-backup-{tag}",
            "cdn_base_url": None,
        }
    )
    S3Store(settings).ensure_bucket()
    S3Store(settings.model_copy(update={"s3_bucket": settings.backup_bucket})).ensure_bucket()
    return settings


def _load_through_api_and_worker(
    settings: Settings, config: PipelineConfig, url: str, video_file: Path
) -> dict[str, str]:
    """Upload, process and export one video; the ids the checks need afterwards."""
    with create_pool(settings, url, application_name="drill-worker", max_size=4) as pool:
        _, raw = make_key(pool, "drill")
        auth = {"Authorization": f"Bearer {raw}"}
        deps = ApiDeps.open(settings, database_url=url, redis_prefix=f"cfdrill:{uuid.uuid4()}:")
        worker = PipelineWorker(
            settings, config, pool, database_url=url, cache=deps.cache, worker_id="drill"
        )
        try:
            with TestClient(create_app(deps)) as api:
                up = api.post(
                    "/v1/videos/upload",
                    content=video_file.read_bytes(),
                    headers=auth | {"Content-Type": "video/mp4"},
                    params={"title": "drill"},
                )
                assert up.status_code == 202, up.text
                video_id = up.json()["video"]["id"]
                # `until`, not `until_idle`: a job waiting out a retry delay is waited for.
                worker.run(until=_settled(pool, "videos", video_id, ("ready", "failed")))
                assert api.get(f"/v1/videos/{video_id}", headers=auth).json()["status"] == "ready"
                clips = api.get(f"/v1/videos/{video_id}/clips", headers=auth).json()["items"]
                body = {"aspect_ratio": "9:16", "caption_style": "karaoke"}
                made = api.post(f"/v1/clips/{clips[0]['id']}/exports", json=body, headers=auth)
                assert made.status_code == 202, made.text
                export_id = made.json()["export"]["id"]
                worker.run(until=_settled(pool, "exports", export_id, ("ready", "failed")))
                export = api.get(f"/v1/exports/{export_id}", headers=auth).json()
                assert export["status"] == "ready", export
        finally:
            worker.close()
            deps.close()
    return {"video": video_id, "export": export_id, "key": raw}


def _settled(
    pool: Pool, table: str, row_id: str, states: tuple[str, ...], timeout_s: float = 600
) -> Callable[[], bool]:
    """A `worker.run(until=...)` predicate: the row reached one of `states` (or time is up)."""
    deadline = time.monotonic() + timeout_s
    query = sql.SQL("SELECT status FROM {} WHERE id = %s").format(sql.Identifier(table))

    def done() -> bool:
        with pool.connection() as conn:
            row = conn.execute(query, (row_id,)).fetchone()
        return (row is not None and row["status"] in states) or time.monotonic() > deadline

    return done


def _own_reference_check(url: str, store: S3Store) -> list[str]:
    """Independent of clipforge.ops.verify: the key columns, each looked up in storage."""
    with psycopg.connect(url) as conn:
        keys = [
            str(k)
            for (k,) in conn.execute(
                "SELECT original_key FROM videos WHERE original_key IS NOT NULL"
                " UNION ALL SELECT object_key FROM exports WHERE object_key IS NOT NULL"
                " UNION ALL SELECT thumbnail_key FROM exports WHERE thumbnail_key IS NOT NULL"
            ).fetchall()
        ]
    assert keys, "the drill made no rows that reference objects"
    return [k for k in keys if store.head(k) is None]


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return table_counts(conn)


def test_restore_drill(
    drill_settings: Settings,
    source_server: PostgresServer,
    pipeline_config: PipelineConfig,
    ray_local: None,
    test_media: dict[str, Path],
) -> None:
    settings, source_url = drill_settings, source_server.url
    started = time.perf_counter()
    ids = _load_through_api_and_worker(
        settings, pipeline_config, source_url, test_media["speech_short"]
    )
    load_s = time.perf_counter() - started
    media, store = S3Store(settings), backup_store(settings)
    before_counts = _counts(source_url)
    assert before_counts["videos"] == 1 and before_counts["exports"] == 1
    assert before_counts["transcript_words"] > 20 and before_counts["jobs"] >= 4
    before_objects = {o.key: (o.size, o.etag) for o in list_objects(media, _MEDIA)}
    # The upload, original, audio track, and the export's mp4, jpg and 3 caption files.
    assert len(before_objects) >= 7

    # Back up: base backup + objects, then a logical dump (objects already mirrored).
    started = time.perf_counter()
    base = create_backup(settings, source_url, media=media, store=store, method="base")
    base_s = time.perf_counter() - started
    started = time.perf_counter()
    dump = create_backup(settings, source_url, media=media, store=store, method="dump")
    dump_s = time.perf_counter() - started
    assert base.database is not None and dump.database is not None
    assert base.database.table_counts == dump.database.table_counts == before_counts
    assert {e.key for e in base.objects} == set(before_objects)
    assert base.objects_copied == len(before_objects) and dump.objects_copied == 0

    # The disaster: the server and its data directory are gone, the media prefixes wiped.
    source_server.close()
    for prefix in _MEDIA:
        media.delete_prefix(prefix)
    assert not list(list_objects(media, _MEDIA))

    restored = empty_server()
    try:
        started = time.perf_counter()
        restore_database(
            load_manifest(store, base.id), store, settings=settings, pgdata=restored.pgdata
        )
        give_to_server(restored.pgdata)
        restored.start()
        wait_promoted(restored.url)
        db_restore_s = time.perf_counter() - started
        started = time.perf_counter()
        stats = restore_media(load_manifest(store, base.id), store, media)
        objects_restore_s = time.perf_counter() - started
        assert stats.copied == len(before_objects)

        logical_url = _database(restored.url, "drill_logical")
        started = time.perf_counter()
        dump_set = load_manifest(store, dump.id)
        restore_database(dump_set, store, settings=settings, database_url=logical_url)
        dump_restore_s = time.perf_counter() - started
        with pytest.raises(BackupError, match="already has tables"):
            restore_database(dump, store, settings=settings, database_url=logical_url)

        # Row counts of every table, from both methods.
        assert _counts(restored.url) == before_counts
        assert _counts(logical_url) == before_counts
        # Every referenced object is back, byte for byte (same size and MD5 etag).
        after_objects = {o.key: (o.size, o.etag) for o in list_objects(media, _MEDIA)}
        assert after_objects == before_objects
        assert _own_reference_check(restored.url, media) == []
        for url in (restored.url, logical_url):
            with psycopg.connect(url) as conn:
                checked, missing = missing_objects(conn, media)
            assert checked >= 7 and missing == []
        _api_serves_restored_data(settings, restored.url, ids)
        _cli_verify_finds_a_lost_object(settings, logical_url, media, ids, dump.id)
        print(
            f"\nrestore drill: load through API + worker {load_s:.1f} s;"
            f" backup base+objects {base_s:.2f} s, dump {dump_s:.2f} s;"
            f" restore base (until writable) {db_restore_s:.2f} s, dump {dump_restore_s:.2f} s,"
            f" objects {objects_restore_s:.2f} s ({len(before_objects)} objects,"
            f" {sum(s for s, _ in before_objects.values()) / 1e6:.1f} MB)"
        )
    finally:
        restored.close()


def _database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return str(psycopg.conninfo.make_conninfo(server_url, dbname=name))


def _api_serves_restored_data(settings: Settings, url: str, ids: dict[str, str]) -> None:
    """The restored server behind the API: the old key, video and export work."""
    deps = ApiDeps.open(settings, database_url=url, redis_prefix=f"cfdrill:{uuid.uuid4()}:")
    try:
        with TestClient(create_app(deps)) as api:
            auth = {"Authorization": f"Bearer {ids['key']}"}
            video = api.get(f"/v1/videos/{ids['video']}", headers=auth)
            assert video.status_code == 200 and video.json()["status"] == "ready"
            export = api.get(f"/v1/exports/{ids['export']}", headers=auth).json()
            assert export["status"] == "ready" and export["url"]
    finally:
        deps.close()


def _cli_verify_finds_a_lost_object(
    settings: Settings, url: str, media: S3Store, ids: dict[str, str], backup_id: str
) -> None:
    """`clipforge backup verify` exits 1 naming the row of an object lost after the restore."""
    secret = settings.s3_secret_access_key
    env = {
        "DATABASE_URL": url,
        "S3_ENDPOINT_URL": str(settings.s3_endpoint_url),
        "S3_BUCKET": str(settings.s3_bucket),
        "S3_ACCESS_KEY_ID": str(settings.s3_access_key_id),
        "S3_SECRET_ACCESS_KEY": secret.get_secret_value() if secret else "",
        "BACKUP_BUCKET": str(settings.backup_bucket),
        "ENVIRONMENT": "test",
    }
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT thumbnail_key FROM exports").fetchone()
    assert row is not None
    media.delete(str(row[0]))
    code, out, err = invoke_cli(env, "backup", "verify", backup_id)
    assert code == 1, out + err
    assert f"missing object {row[0]} (needed by exports:{ids['export']}:thumbnail_key)" in err
    assert "1 problem(s)" in out
