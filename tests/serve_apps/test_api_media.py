"""Downloads with local-folder storage (the embedded default): an export's MP4, poster frame
and caption files through the API's signed, expiring, tenant-scoped `/media/` URLs."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient

from clipforge.client import Client
from clipforge.db.pool import Pool
from clipforge.db.repo.api_keys import ApiKey, revoke_api_key
from clipforge.db.repo.clips import NewClip, replace_clips
from clipforge.db.repo.exports import create_export, update_export
from clipforge.settings import Settings
from clipforge.storage import LocalStore
from clipforge.storage.keys import export_key, original_key
from clipforge.storage.signed import MediaSigner
from serve_apps.api.app import create_app
from serve_apps.api.deps import ApiDeps
from serve_apps.api.services.media import media_url
from tests.utils.factories import make_key, make_video

Auth = tuple[ApiKey, dict[str, str]]
MP4 = bytes(range(256)) * 40  # 10 KiB whose every byte range is recognisable
FILES = {"mp4": MP4, "jpg": b"\xff\xd8jpeg", "srt": b"1\n00:00:00,000 --> 00:00:01,000\nHi\n"}
FILES |= {"vtt": b"WEBVTT\n", "ass": b"[Script Info]\n"}


@pytest.fixture(scope="module")
def local_deps(
    settings: Settings, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiDeps]:
    """The API on local-folder storage: no S3_BUCKET, no CDN, no Redis."""
    data = tmp_path_factory.mktemp("media-data")
    local = settings.model_copy(
        update={"s3_bucket": None, "cdn_base_url": None, "redis_url": None, "data_dir": data}
    )
    deps = ApiDeps.open(local, database_url=database_url)
    yield deps
    deps.close()


@pytest.fixture(scope="module")
def client(local_deps: ApiDeps) -> Iterator[TestClient]:
    with TestClient(create_app(local_deps), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture()
def owner(db: Pool) -> Auth:
    key, raw = make_key(db, "owner")
    return key, {"Authorization": f"Bearer {raw}"}


def _ready_export(db: Pool, deps: ApiDeps, key: ApiKey) -> tuple[uuid.UUID, uuid.UUID]:
    """A ready export of a clip of one of `key`'s videos, its files in the store."""
    video = make_video(db, key, status="ready")
    with db.connection() as conn:
        (clip,) = replace_clips(
            conn,
            video_id=video.id,
            clips=[NewClip(1, 0.0, 15.0, 90.0, {"hook": 0.5}, "r", "T", "h", "s", "v")],
        )
        export = create_export(conn, clip_id=clip.id, aspect_ratio="9:16", caption_style="auto")
        for ext, data in FILES.items():
            deps.store.put_bytes(export_key(video.id, export.id, ext), data)
        update_export(
            conn,
            export_id=export.id,
            status="ready",
            object_key=export_key(video.id, export.id, "mp4"),
            thumbnail_key=export_key(video.id, export.id, "jpg"),
        )
    return video.id, export.id


def _with(url: str, **params: str) -> str:
    """`url` with some query parameters replaced."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | params
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


def test_export_urls_download_without_the_api_key(
    client: TestClient, owner: Auth, db: Pool, local_deps: ApiDeps, tmp_path: Path
) -> None:
    key, auth = owner
    _, export_id = _ready_export(db, local_deps, key)
    out = client.get(f"/v1/exports/{export_id}", headers=auth).json()
    urls = {"mp4": out["url"], "jpg": out["thumbnail_url"]} | out["caption_urls"]
    assert set(urls) == set(FILES)
    for ext, url in urls.items():
        assert url.startswith("http://testserver/media/videos/"), url  # never a server path
        got = client.get(url)  # no Authorization header: the URL is the credential
        assert got.status_code == 200 and got.content == FILES[ext], (ext, got.text)
    assert client.get(urls["mp4"]).headers["content-type"] == "video/mp4"
    assert client.get(urls["srt"]).headers["content-type"].startswith("application/x-subrip")
    assert (
        client.get(f"/v1/clips/{out['clip_id']}/exports", headers=auth).json()["items"][0][
            "caption_urls"
        ]
        == out["caption_urls"]
    )

    # Range requests, as a player seeking in the video sends them.
    part = client.get(urls["mp4"], headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == MP4[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(MP4)}"
    assert client.get(urls["mp4"], headers={"Range": "bytes=-100"}).content == MP4[-100:]
    head = client.head(urls["mp4"])
    assert head.status_code == 200 and head.headers["content-length"] == str(len(MP4))
    assert head.headers["accept-ranges"] == "bytes"
    # The Python client downloads them too (in-process transport, no key sent).
    api = Client("http://testserver", auth["Authorization"].split()[1], http=client)
    export = api.get_export(export_id)
    assert export.caption_urls is not None
    assert api.download(export.caption_urls.srt, tmp_path / "c.srt").read_bytes() == FILES["srt"]


def test_tampered_expired_and_other_tenants_urls_are_refused(
    client: TestClient, owner: Auth, db: Pool, local_deps: ApiDeps
) -> None:
    key, auth = owner
    video_id, export_id = _ready_export(db, local_deps, key)
    url = client.get(f"/v1/exports/{export_id}", headers=auth).json()["url"]
    query = parse_qs(urlsplit(url).query)
    signature, expires = query["signature"][0], int(query["expires"][0])
    assert expires > time.time() + local_deps.settings.s3_presign_expiry_s - 1

    def refused(bad: str) -> None:
        got = client.get(bad)
        assert got.status_code == 403, (bad, got.text)
        assert got.json()["error"]["code"] == "forbidden" and MP4[:100] not in got.content

    refused(_with(url, signature="0" * 64))
    refused(_with(url, signature=signature[:-1] + ("0" if signature[-1] != "0" else "1")))
    refused(_with(url, expires=str(expires + 3600)))  # a longer life is a different URL
    refused(url.split("?")[0])  # no signature at all
    refused(_with(url, signature="é" * 64))
    # Another object of the same owner under this URL's signature.
    refused(url.replace(".mp4?", ".jpg?"))

    # Expired: a URL signed with the server's own secret an hour ago.
    signer = local_deps.signer
    assert signer is not None
    mp4_key = export_key(video_id, export_id, "mp4")
    old = signer.url("http://testserver", mp4_key, tenant=key.id, now=time.time() - 3600)
    refused(old)
    # Signed by another server (another secret).
    stranger = MediaSigner(b"x" * 48, 900).url("http://testserver", mp4_key, tenant=key.id)
    refused(stranger)

    # Another tenant: cannot see the export, cannot reuse the URL as itself, and a URL made out
    # to it for this object (were one ever signed) is refused because it does not own the video.
    other, raw = make_key(db, "other")
    other_auth = {"Authorization": f"Bearer {raw}"}
    assert client.get(f"/v1/exports/{export_id}", headers=other_auth).status_code == 404
    refused(_with(url, tenant=str(other.id)))
    refused(signer.url("http://testserver", mp4_key, tenant=other.id))
    # Valid signatures only open export files: never a video's original.
    local_deps.store.put_bytes(original_key(video_id, "mp4"), b"original")
    original = signer.url("http://testserver", original_key(video_id, "mp4"), tenant=key.id)
    assert client.get(original).status_code == 404

    # Revoking the key ends its URLs at once, like its API access.
    assert client.get(url).status_code == 200
    with db.connection() as conn:
        revoke_api_key(conn, key_id=key.id)
    refused(url)


def test_signing_secret_is_private_and_shared_by_processes(local_deps: ApiDeps) -> None:
    assert isinstance(local_deps.store, LocalStore)
    secret_file = local_deps.settings.data_dir / "media-url.secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    # The same secret for every process of this DATA_DIR (uvicorn workers, restarts).
    again = ApiDeps.open(local_deps.settings, database_url=local_deps.settings.database_url)
    try:
        assert again.signer == local_deps.signer
    finally:
        again.close()


def test_api_public_url_is_the_base_behind_a_proxy(local_deps: ApiDeps, owner: Auth) -> None:
    proxied = local_deps.settings.model_copy(update={"api_public_url": "https://api.example.com"})
    deps = dataclasses.replace(local_deps, settings=proxied)
    key = "videos/00000000-0000-0000-0000-000000000001/exports/x.mp4"
    url = media_url(deps, key, tenant=owner[0].id, base_url="http://10.0.0.5:8080/")
    assert url.startswith(f"https://api.example.com/media/{key}?tenant=")
    direct = media_url(local_deps, key, tenant=owner[0].id, base_url="http://10.0.0.5:8080/")
    assert direct.startswith(f"http://10.0.0.5:8080/media/{key}?")
