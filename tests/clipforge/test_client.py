"""`clipforge.client` against the real standalone API (Postgres, Redis, S3-compatible server).

The API runs in-process: the client sends its requests through the API tests' Starlette
TestClient (an `httpx.Client` bound to the app), so every request goes through the real routes,
auth, error handlers and database; presigned uploads and downloads go to the real S3 server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from fastapi.testclient import TestClient

from clipforge.client import Client
from clipforge.client.errors import (
    ApiNotFound,
    ExportFailed,
    InvalidRequest,
    Unauthorized,
    VideoFailed,
    WaitTimeout,
)
from clipforge.client.models import VideoOut
from clipforge.db.pool import Pool
from clipforge.db.repo.api_keys import ApiKey
from clipforge.db.repo.clips import NewClip, replace_clips
from clipforge.db.repo.exports import update_export
from clipforge.db.repo.transcripts import replace_transcript
from clipforge.db.repo.videos import update_video
from clipforge.types import ModelInfo, Segment, Transcript, Word
from serve_apps.api.deps import ApiDeps

# The API tests' fixtures: the app on the test services, and a fresh key per test.
from tests.serve_apps.conftest import api_deps, api_settings, client, owner  # noqa: F401
from tests.utils.factories import make_video

PUBLIC_URL = "https://93.184.216.34/talk.mp4"  # a literal public address: no DNS needed


def _http(app_client: TestClient) -> httpx.Client:
    # Starlette's TestClient is an httpx.Client bound to the app (typed loosely upstream).
    return cast(httpx.Client, app_client)


@pytest.fixture()
def api(client: TestClient, owner: tuple[ApiKey, dict[str, str]]) -> Iterator[Client]:  # noqa: F811
    _, auth = owner
    raw = auth["Authorization"].removeprefix("Bearer ")
    with Client("http://testserver", raw, http=_http(client)) as api_client:
        yield api_client


def test_create_get_and_idempotent_retry(api: Client) -> None:
    created = api.create_video(PUBLIC_URL, title="Talk", idempotency_key="create-1")
    again = api.create_video(PUBLIC_URL, title="Talk", idempotency_key="create-1")
    assert created.job_id is not None and again.video.id == created.video.id
    video = api.get_video(created.video.id)
    assert video.status == "pending" and video.source_url == PUBLIC_URL
    assert video.metadata == {"title": "Talk"}
    api.delete_video(created.video.id)
    with pytest.raises(ApiNotFound):
        api.get_video(created.video.id)
    with pytest.raises(ApiNotFound):
        api.delete_video(created.video.id)


def test_list_videos_follows_every_cursor(
    api: Client,
    db: Pool,
    owner: tuple[ApiKey, dict[str, str]],  # noqa: F811
) -> None:
    key, _ = owner
    made = [make_video(db, key) for _ in range(5)]
    pages = list(api.video_pages(limit=2))
    assert [len(p.items) for p in pages] == [2, 2, 1] and pages[-1].next_cursor is None
    listed = [v.id for v in api.list_videos(limit=2)]
    assert sorted(listed) == sorted(v.id for v in made) and len(set(listed)) == 5
    assert list(api.list_videos(status="ready")) == []


def test_errors_are_typed_with_status_code_and_request_id(
    api: Client,
    client: TestClient,  # noqa: F811
) -> None:
    with pytest.raises(ApiNotFound) as missing:
        api.get_video(uuid.uuid4())
    assert missing.value.status == 404 and missing.value.code == "not_found"
    assert missing.value.request_id
    stranger = Client("http://testserver", "cf_not_a_key", http=_http(client))
    with pytest.raises(Unauthorized) as denied:
        stranger.get_video(uuid.uuid4())
    assert denied.value.status == 401 and denied.value.code == "unauthorized"
    with pytest.raises(InvalidRequest) as invalid:
        api.create_export(uuid.uuid4(), aspect_ratio="4:3")  # type: ignore[arg-type]
    assert invalid.value.status == 422 and invalid.value.code == "validation_error"
    assert invalid.value.details and "aspect_ratio" in str(invalid.value.details)


def test_wait_for_video_raises_with_the_reason_and_times_out(
    api: Client,
    db: Pool,
    owner: tuple[ApiKey, dict[str, str]],  # noqa: F811
) -> None:
    key, _ = owner
    failed, pending = make_video(db, key), make_video(db, key)
    with db.connection() as conn:
        update_video(conn, video_id=failed.id, status="failed", error="no audio stream")
    seen: list[VideoOut] = []
    with pytest.raises(VideoFailed) as err:
        api.wait_for_video(failed.id, timeout_s=10, poll_s=0.05, on_status=seen.append)
    assert err.value.reason == "no audio stream" and "no audio stream" in str(err.value)
    assert [v.status for v in seen] == ["failed"]
    with pytest.raises(WaitTimeout) as slow:
        api.wait_for_video(pending.id, timeout_s=0.3, poll_s=0.05)
    assert slow.value.last_status == "pending"


def test_presigned_and_direct_uploads_queue_the_import(
    api: Client, test_media: dict[str, Path]
) -> None:
    path = test_media["speech_short"]
    presigned = api.upload_video(path, title="short")
    assert presigned.job_id is not None and presigned.video.status == "pending"
    assert presigned.video.size_bytes == path.stat().st_size
    direct = api.upload_video(test_media["audio_only"], method="direct")
    assert direct.job_id is not None and direct.video.status == "pending"


def test_transcript_clips_exports_and_download(
    api: Client,
    db: Pool,
    owner: tuple[ApiKey, dict[str, str]],  # noqa: F811
    api_deps: ApiDeps,  # noqa: F811
    tmp_path: Path,
) -> None:
    key, _ = owner
    video = make_video(db, key, status="ready")
    words = (Word(0.0, 0.4, "Hello", 0.9), Word(0.5, 1.0, "world.", 0.8))
    model = ModelInfo(name="whisper-tiny.en", version="t+sha.abc", sha256="abc")
    clips = [
        NewClip(
            i + 1, i * 20.0, i * 20.0 + 15, 90.0 - i, {"hook": 0.5}, "r", f"T{i}", "h", "s", "v"
        )
        for i in range(3)
    ]
    with db.connection() as conn:
        replace_transcript(
            conn,
            video_id=video.id,
            transcript=Transcript("en", 1.5, (Segment(0.0, 1.0, "Hello world.", words),), model),
        )
        stored = replace_clips(conn, video_id=video.id, clips=clips)
    transcript = api.get_transcript(video.id)
    assert transcript.text == "Hello world." and transcript.segments[0].words[1].text == "world."
    assert "Hello world." in api.get_captions(video.id, "vtt")
    listed = list(api.list_clips(video.id, limit=2))
    assert sorted(c.rank for c in listed) == [1, 2, 3]
    assert {c.id for c in listed} == {c.id for c in stored} and len(listed) == 3

    ok, bad = (
        api.create_export(stored[i].id, "1:1", "bold", layout="center").export for i in (0, 1)
    )
    assert ok.status == "queued" and ok.aspect_ratio == "1:1" and ok.layout == "center"
    object_key = f"videos/{video.id}/exports/{ok.id}.mp4"
    api_deps.store.put_bytes(object_key, b"mp4 bytes")
    with db.connection() as conn:
        update_export(conn, export_id=ok.id, status="ready", object_key=object_key)
        update_export(conn, export_id=bad.id, status="failed", error="ffmpeg render failed")
    ready = api.wait_for_export(ok.id, timeout_s=10, poll_s=0.05)
    assert ready.url is not None
    assert api.download(ready.url, tmp_path / "clip.mp4").read_bytes() == b"mp4 bytes"
    with pytest.raises(ExportFailed) as err:
        api.wait_for_export(bad.id, timeout_s=10, poll_s=0.05)
    assert err.value.reason == "ffmpeg render failed"
