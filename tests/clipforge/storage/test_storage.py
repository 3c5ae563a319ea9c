"""Both storage backends against the same contract; S3 against a real S3-compatible server."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clipforge.errors import NotFound, ValidationFailed
from clipforge.settings import Settings
from clipforge.storage import LocalStore, ObjectStore, S3Store
from tests.utils.wait import wait_until


@pytest.fixture(scope="module")
def s3(s3_settings: Settings) -> S3Store:
    store = S3Store(s3_settings)
    store.ensure_bucket()
    return store


@pytest.fixture(params=["s3", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "s3":
        backend: ObjectStore = request.getfixturevalue("s3")
        backend.delete_prefix("t/")
        yield backend
        backend.delete_prefix("t/")
    else:
        yield LocalStore(tmp_path / "store", cdn_base_url="https://cdn.example.com")


def test_round_trip_head_and_delete(store: ObjectStore, tmp_path: Path) -> None:
    info = store.put_bytes("t/a/hello.txt", b"hello", content_type="text/plain")
    assert info.size == 5
    assert store.get_bytes("t/a/hello.txt") == b"hello"
    head = store.head("t/a/hello.txt")
    assert head is not None and head.size == 5
    out = store.download_file("t/a/hello.txt", tmp_path / "dl" / "x.txt")
    assert out.read_bytes() == b"hello"
    store.delete("t/a/hello.txt")
    assert store.head("t/a/hello.txt") is None
    with pytest.raises(NotFound):
        store.get_bytes("t/a/hello.txt")
    with pytest.raises(NotFound):
        store.download_file("t/a/hello.txt", tmp_path / "missing")


def test_listing_pages_through_every_key_once(store: ObjectStore) -> None:
    keys = sorted(f"t/list/{i:03d}.bin" for i in range(25))
    for key in keys:
        store.put_bytes(key, key.encode())
    store.put_bytes("t/other/x.bin", b"x")
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = store.list_page("t/list/", limit=10, token=token)
        seen += [i.key for i in page.items]
        pages += 1
        if page.next_token is None:
            break
        token = page.next_token
    assert seen == keys and pages == 3
    assert store.delete_prefix("t/list/") == 25
    assert store.list_page("t/list/").items == []
    assert store.head("t/other/x.bin") is not None


@pytest.mark.parametrize(
    "bad", ["../etc/passwd", "/abs/key", "a/../../b", "a//b", "sp ace", "x" * 600, ""]
)
def test_keys_from_outside_are_refused(store: ObjectStore, bad: str) -> None:
    with pytest.raises(ValidationFailed):
        store.put_bytes(bad, b"x")


def test_local_public_url_uses_cdn(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, cdn_base_url="https://cdn.example.com")
    assert store.public_url("videos/1/a.mp4") == "https://cdn.example.com/videos/1/a.mp4"


def test_s3_multipart_upload_of_a_large_file(s3: S3Store, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    data = os.urandom(17 * 1024 * 1024)  # above the 16 MB multipart threshold
    big.write_bytes(data)
    info = s3.put_file("t/big.bin", big)
    assert info.size == len(data)
    # S3 etags of multipart objects end in "-<parts>"; single-part ones are a plain MD5.
    assert "-" in info.etag
    copy = s3.download_file("t/big.bin", tmp_path / "copy.bin")
    assert hashlib.sha256(copy.read_bytes()).digest() == hashlib.sha256(data).digest()
    s3.delete("t/big.bin")


def test_s3_presigned_put_and_get_work_then_expire(s3: S3Store) -> None:
    put_url = s3.presign_put("t/presigned.bin", expires_s=60)
    assert httpx.put(put_url, content=b"uploaded directly").status_code == 200
    get_url = s3.presign_get("t/presigned.bin", expires_s=60)
    resp = httpx.get(get_url)
    assert resp.status_code == 200 and resp.content == b"uploaded directly"

    short_get = s3.presign_get("t/presigned.bin", expires_s=1)
    short_put = s3.presign_put("t/presigned2.bin", expires_s=1)
    # Refused once a second has passed (the signature's clock has whole seconds).
    wait_until(lambda: httpx.get(short_get).status_code == 403, timeout_s=10, interval_s=0.2)
    assert httpx.put(short_put, content=b"late").status_code == 403
    assert s3.head("t/presigned2.bin") is None
    s3.delete("t/presigned.bin")


def test_s3_public_url_is_cdn_when_configured(s3_settings: Settings) -> None:
    settings = s3_settings.model_copy(update={"cdn_base_url": "https://cdn.example.com"})
    assert (
        S3Store(settings).public_url("videos/v/x.mp4") == "https://cdn.example.com/videos/v/x.mp4"
    )


def test_s3_wrong_credentials_are_rejected(s3_settings: Settings, s3: S3Store) -> None:
    from botocore.exceptions import ClientError
    from pydantic import SecretStr

    bad = S3Store(s3_settings.model_copy(update={"s3_secret_access_key": SecretStr("wrong")}))
    with pytest.raises(ClientError):
        bad.put_bytes("t/nope.bin", b"x")
