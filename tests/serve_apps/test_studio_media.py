"""The studio page and its media route, through the standalone app on local-folder storage.

The page is static; its source route is the one place outside `/v1` and the signed `/media/`
URLs that reads stored bytes, so these check what it must refuse (no cookie, a wrong key,
another key's video) and that a source seeks (Range) from the local folder without file://
URLs; an export's files come through the signed URLs `/v1` hands out, as for any client.
The browser test (`test_studio_browser.py`) drives the page itself.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from clipforge.db.pool import Pool
from clipforge.db.repo.clips import NewClip, replace_clips
from clipforge.db.repo.exports import create_export, update_export
from clipforge.db.repo.videos import update_video
from clipforge.errors import ValidationFailed
from clipforge.storage import LocalStore
from clipforge.storage.keys import export_key, original_key
from clipforge.studio import running_studio
from serve_apps.api.app import create_app
from serve_apps.api.deps import ApiDeps
from serve_apps.api.studio import KEY_COOKIE
from tests.utils.factories import make_key, make_video
from tests.utils.servers import free_port

SOURCE = bytes(range(256)) * 64  # 16 KiB: enough to ask for a middle range


@pytest.fixture(scope="module")
def local_client(
    api_deps: ApiDeps, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The app over the test database with a local-folder store (the embedded default's)."""
    store = LocalStore(tmp_path_factory.mktemp("studio-storage"))
    local = api_deps.settings.model_copy(
        update={
            "s3_bucket": None,
            "cdn_base_url": None,
            "data_dir": tmp_path_factory.mktemp("studio-data"),
        }
    )
    deps = dataclasses.replace(api_deps, settings=local, store=store)  # signs /media/ URLs
    with TestClient(create_app(deps), raise_server_exceptions=False) as test_client:
        yield test_client


def _seed(db: Pool, store: LocalStore) -> tuple[str, uuid.UUID, uuid.UUID, uuid.UUID]:
    key, raw = make_key(db, "studio")
    video = make_video(db, key, status="ready")
    stored = original_key(video.id, "mp4")
    store.put_bytes(stored, SOURCE)
    with db.connection() as conn:
        update_video(conn, video_id=video.id, original_key=stored, duration_s=10.0)
        clip = NewClip(1, 1.0, 4.0, 80.0, {}, "r", "T", "h", "s", "v1")
        (row,) = replace_clips(conn, video_id=video.id, clips=[clip])
        ready = create_export(conn, clip_id=row.id, aspect_ratio="1:1", caption_style="auto")
        mp4 = export_key(video.id, ready.id)
        update_export(conn, export_id=ready.id, status="ready", object_key=mp4, duration_s=3.0)
        pending = create_export(conn, clip_id=row.id, aspect_ratio="9:16", caption_style="auto")
    store.put_bytes(mp4, b"rendered clip")
    store.put_bytes(
        export_key(video.id, ready.id, "vtt"), b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n"
    )
    return raw, video.id, ready.id, pending.id


def test_page_is_static_and_strict(local_client: TestClient) -> None:
    video_id = uuid.uuid4()
    page = local_client.get(f"/studio/videos/{video_id}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'data-video="{video_id}"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.split("<body")[0].replace("http-equiv", "")  # no remote asset
    for asset in ("studio.js", "studio.css"):
        assert local_client.get(f"/studio/static/{asset}").status_code == 200
    assert local_client.get("/studio/videos/not-a-uuid").status_code == 422


def test_media_needs_the_owners_key(local_client: TestClient, db: Pool) -> None:
    store = local_client.app.state.deps.store  # type: ignore[attr-defined]
    raw, video_id, _, _ = _seed(db, store)
    _, other_raw = make_key(db, "other")
    source = f"/studio/media/videos/{video_id}/source"

    local_client.cookies.clear()
    assert local_client.get(source).status_code == 401
    local_client.cookies.set(KEY_COOKIE, "cf_wrong")
    assert local_client.get(source).status_code == 401
    local_client.cookies.set(KEY_COOKIE, other_raw)
    assert local_client.get(source).status_code == 404
    # A header key is not enough: the route serves the page's cookie only.
    local_client.cookies.clear()
    header = {"Authorization": f"Bearer {raw}"}
    assert local_client.get(source, headers=header).status_code == 401

    local_client.cookies.set(KEY_COOKIE, raw)
    whole = local_client.get(source)
    assert whole.status_code == 200 and whole.content == SOURCE
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    part = local_client.get(source, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == SOURCE[1000:2000]

    local_client.cookies.clear()


def test_exports_come_through_the_apis_signed_urls(local_client: TestClient, db: Pool) -> None:
    """The page plays and downloads an export from the URLs `/v1` hands out with it, as any
    client does: the studio has no export route of its own."""
    store = local_client.app.state.deps.store  # type: ignore[attr-defined]
    raw, _, ready_id, pending_id = _seed(db, store)
    header = {"Authorization": f"Bearer {raw}"}
    local_client.cookies.set(KEY_COOKIE, raw)
    assert local_client.get(f"/studio/media/exports/{ready_id}/mp4").status_code == 404
    local_client.cookies.clear()
    export = local_client.get(f"/v1/exports/{ready_id}", headers=header).json()
    assert "/media/" in export["url"] and "signature" in export["url"]
    assert local_client.get(export["url"]).content == b"rendered clip"  # no key, no cookie
    assert local_client.get(export["caption_urls"]["vtt"]).text.startswith("WEBVTT")
    pending = local_client.get(f"/v1/exports/{pending_id}", headers=header).json()
    assert pending["url"] is None and pending["caption_urls"] is None


def test_s3_media_is_a_short_presigned_redirect(client: TestClient, db: Pool) -> None:
    """On S3 the API hands the browser a presigned URL instead of carrying the bytes."""
    deps: ApiDeps = client.app.state.deps  # type: ignore[attr-defined]
    key, raw = make_key(db, "studio")
    video = make_video(db, key, status="ready")
    stored = original_key(video.id, "mp4")
    deps.store.put_bytes(stored, SOURCE)
    with db.connection() as conn:
        update_video(conn, video_id=video.id, original_key=stored)
    client.cookies.set(KEY_COOKIE, raw)
    try:
        answer = client.get(f"/studio/media/videos/{video.id}/source", follow_redirects=False)
    finally:
        client.cookies.clear()
    assert answer.status_code == 307
    target = answer.headers["location"]
    assert target.startswith(deps.settings.s3_endpoint_url or "") and "Expires=" in target
    assert httpx.get(target, headers={"Range": "bytes=16-31"}).content == SOURCE[16:32]


def test_local_store_path_of_stays_inside(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("videos/a/original.mp4", b"x")
    assert store.path_of("videos/a/original.mp4") == (tmp_path / "videos/a/original.mp4").resolve()
    assert store.path_of("videos/a/missing.mp4") is None


def test_process_links_the_studio_only_for_an_active_key_and_a_live_server(db: Pool) -> None:
    from pipelines.local.one_video import ProcessOptions, _studio_owner

    key, raw = make_key(db, "studio")
    assert _studio_owner(db, ProcessOptions()) is None  # no studio: the video stays ownerless
    assert _studio_owner(db, ProcessOptions(studio_url="http://x", studio_key=raw)) == key.id
    with pytest.raises(ValidationFailed, match="CLIPFORGE_API_KEY"):
        _studio_owner(db, ProcessOptions(studio_url="http://x", studio_key="cf_unknown"))
    # Nothing listens on a fresh free port: no link (the live case is in the browser test).
    assert running_studio(f"http://127.0.0.1:{free_port()}", uuid.uuid4(), timeout_s=1) is None
