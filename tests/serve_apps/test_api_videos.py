"""Videos API against real Postgres, Redis and the S3-compatible server (standalone app)."""

from __future__ import annotations

import uuid

import httpx
from fastapi.testclient import TestClient

from clipforge.db.pool import Pool
from clipforge.db.repo.api_keys import ApiKey
from clipforge.fetch import REFUSED
from clipforge.queue import get_job
from clipforge.storage.keys import upload_key
from serve_apps.api.deps import ApiDeps
from tests.serve_apps.helpers import table_counts
from tests.utils.factories import make_video

Auth = tuple[ApiKey, dict[str, str]]
PUBLIC_URL = "https://93.184.216.34/talk.mp4"  # a literal public address: no DNS needed


def test_create_from_url_writes_video_and_import_job(client: TestClient, owner: Auth, db: Pool):
    _, auth = owner
    r = client.post("/v1/videos", json={"source_url": PUBLIC_URL, "title": "Talk"}, headers=auth)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["video"]["status"] == "pending"
    assert body["video"]["source_url"] == PUBLIC_URL
    assert body["video"]["metadata"] == {"title": "Talk"}
    assert r.headers["x-request-id"]
    with db.connection() as conn:
        job = get_job(conn, job_id=body["job_id"])
    assert job is not None and job.kind == "import" and job.state == "queued"
    assert job.payload == {"video_id": body["video"]["id"]}
    assert table_counts(db)["videos"] == 1


def test_auth_missing_invalid_and_other_keys_video(
    client: TestClient, owner: Auth, other: Auth, db: Pool
):
    key, auth = owner
    video = make_video(db, key)
    assert client.get(f"/v1/videos/{video.id}").status_code == 401
    bad = client.get(f"/v1/videos/{video.id}", headers={"Authorization": "Bearer cf_nope"})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "unauthorized"
    assert client.get(f"/v1/videos/{video.id}", headers=auth).status_code == 200
    theirs = client.get(f"/v1/videos/{video.id}", headers=other[1])
    assert theirs.status_code == 404
    assert theirs.json()["error"]["code"] == "not_found"
    assert client.delete(f"/v1/videos/{video.id}", headers=other[1]).status_code == 404
    assert client.get("/v1/videos", headers=other[1]).json()["items"] == []


def test_burst_over_limit_gets_429_with_retry_after(client: TestClient, owner: Auth, api_deps):
    _, auth = owner
    burst = api_deps.settings.rate_limit_burst
    codes = [client.get("/v1/videos", headers=auth).status_code for _ in range(burst)]
    assert codes == [200] * burst
    # The bucket refills while the burst is sent (10 per second here), so allow a few more.
    for _ in range(burst):
        refused = client.get("/v1/videos", headers=auth)
        if refused.status_code != 200:
            break
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"


def test_idempotency_key_creates_once_and_rejects_a_different_body(
    client: TestClient, owner: Auth, db: Pool
):
    _, auth = owner
    headers = auth | {"Idempotency-Key": "create-1"}
    first = client.post("/v1/videos", json={"source_url": PUBLIC_URL}, headers=headers)
    again = client.post("/v1/videos", json={"source_url": PUBLIC_URL}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    counts = table_counts(db)
    assert (counts["videos"], counts["jobs"], counts["idempotency_keys"]) == (1, 1, 1)
    changed = client.post(
        "/v1/videos", json={"source_url": PUBLIC_URL, "title": "x"}, headers=headers
    )
    assert changed.status_code == 409
    assert table_counts(db)["videos"] == 1


def test_presigned_upload_flow(client: TestClient, owner: Auth, db: Pool, test_media, api_deps):
    _, auth = owner
    data = test_media["speech_short"].read_bytes()
    r = client.post("/v1/videos", json={"upload": {"size_bytes": len(data)}}, headers=auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["video"]["status"] == "uploading" and created["job_id"] is None
    video_id = created["video"]["id"]
    early = client.post(f"/v1/videos/{video_id}/uploaded", headers=auth)
    assert early.status_code == 409
    put = httpx.put(created["upload"]["url"], content=data, timeout=30)
    assert put.status_code == 200
    done = client.post(created["upload"]["complete_url"], headers=auth)
    assert done.status_code == 202, done.text
    assert done.json()["video"]["status"] == "pending"
    assert done.json()["video"]["size_bytes"] == len(data)
    assert client.get(f"/v1/videos/{video_id}", headers=auth).json()["status"] == "pending"
    assert client.post(f"/v1/videos/{video_id}/uploaded", headers=auth).status_code == 409
    assert table_counts(db)["jobs"] == 1
    info = api_deps.store.head(upload_key(uuid.UUID(video_id)))
    assert info is not None and info.size == len(data)


def test_presigned_upload_over_the_limit_is_refused(client: TestClient, owner: Auth, db: Pool):
    _, auth = owner
    r = client.post("/v1/videos", json={"upload": {"size_bytes": 10**12}}, headers=auth)
    assert r.status_code == 413
    assert table_counts(db)["videos"] == 0


def test_direct_upload_media_nonmedia_and_oversized(
    client: TestClient, owner: Auth, db: Pool, test_media
):
    _, auth = owner
    media = auth | {"Content-Type": "video/mp4"}
    data = test_media["speech_short"].read_bytes()[: 3 * 1024 * 1024]
    ok = client.post("/v1/videos/upload", content=data, headers=media, params={"title": "clip"})
    assert ok.status_code == 202, ok.text
    assert ok.json()["video"]["metadata"]["sniffed_container"] == "mp4"
    text = client.post("/v1/videos/upload", content=b"%PDF-1.7 not a video" * 10, headers=media)
    assert text.status_code == 415
    assert text.json()["error"]["code"] == "unsupported_media_type"
    wrong_type = client.post("/v1/videos/upload", content=data, headers=auth)
    assert wrong_type.status_code == 415
    big = client.post("/v1/videos/upload", content=b"\0" * (5 * 1024 * 1024), headers=media)
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(5):
            yield b"\0" * (1024 * 1024)

    streamed = client.post("/v1/videos/upload", content=chunks(), headers=media)
    assert streamed.status_code == 413
    assert table_counts(db)["videos"] == 1


def test_ssrf_source_urls_are_refused(client: TestClient, owner: Auth, db: Pool):
    import socket

    _, auth = owner
    refused = [
        "http://127.0.0.1/video.mp4",
        "http://10.1.2.3/video.mp4",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/v.mp4",
        "http://0x7f000001/v.mp4",
        "file:///etc/passwd",
        "gopher://example.com/",
        f"http://{socket.gethostname()}/v.mp4",  # a name that resolves to loopback here
        "http://localhost:5432/",
    ]
    for url in refused:
        r = client.post("/v1/videos", json={"source_url": url}, headers=auth)
        assert r.status_code == 422, (url, r.text)
        assert r.json()["error"]["code"] == "validation_error"
    assert table_counts(db)["videos"] == 0


def test_public_looking_name_resolving_to_loopback_is_refused(
    api_deps: ApiDeps, owner: Auth, db: Pool
):
    import dataclasses

    from serve_apps.api.app import create_app

    # The resolver stands in for public DNS (no network here); the SSRF check is the real one.
    answers = {
        "media.cdn-example.com": ["93.184.216.35", "127.0.0.1"],
        "93.184.216.34": ["93.184.216.34"],
    }
    deps = dataclasses.replace(api_deps, resolver=lambda host, port: answers.get(host, []))
    _, auth = owner
    with TestClient(create_app(deps)) as app:
        r = app.post(
            "/v1/videos", json={"source_url": "https://media.cdn-example.com/v.mp4"}, headers=auth
        )
        assert r.status_code == 422
        # One answer for every refusal that depends on resolution; the address is only logged.
        assert r.json()["error"]["message"] == REFUSED
        assert (
            app.post("/v1/videos", json={"source_url": PUBLIC_URL}, headers=auth).status_code == 202
        )
    assert table_counts(db)["videos"] == 1


def test_malformed_json_and_invalid_bodies(client: TestClient, owner: Auth):
    _, auth = owner
    headers = auth | {"Content-Type": "application/json"}
    bad = client.post("/v1/videos", content=b'{"source_url": "https://x', headers=headers)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "malformed_json"
    both = client.post(
        "/v1/videos", json={"source_url": PUBLIC_URL, "upload": {"size_bytes": 1}}, headers=auth
    )
    assert both.status_code == 422
    extra = client.post("/v1/videos", json={"source_url": PUBLIC_URL, "x": 1}, headers=auth)
    assert extra.status_code == 422
    assert extra.json()["error"]["details"][0]["loc"] == ["body", "x"]
    huge = client.post(
        "/v1/videos", json={"source_url": "https://a.com/" + "a" * 70000}, headers=auth
    )
    assert huge.status_code == 413


def test_pagination_filters_and_bad_cursor(client: TestClient, owner: Auth, db: Pool):
    key, auth = owner
    made = {str(make_video(db, key).id) for _ in range(25)}
    make_video(db, key, status="ready")
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/videos", params=params, headers=auth).json()
        seen += [v["id"] for v in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 26 and made < set(seen)
    ready = client.get("/v1/videos", params={"status": "ready"}, headers=auth).json()
    assert [v["status"] for v in ready["items"]] == ["ready"]
    for params in ({"cursor": "not-a-cursor"}, {"cursor": "eyJ0IjogMX0"}, {"limit": 0}):
        r = client.get("/v1/videos", params=params, headers=auth)
        assert r.status_code == 422, params
    assert client.get("/v1/videos", params={"limit": 101}, headers=auth).status_code == 422
    assert client.get("/v1/videos", params={"status": "done"}, headers=auth).status_code == 422


def test_delete_removes_rows_objects_and_cache(
    client: TestClient, owner: Auth, db: Pool, api_deps: ApiDeps
):
    key, auth = owner
    video = make_video(db, key)
    assert client.get(f"/v1/videos/{video.id}", headers=auth).status_code == 200  # now cached
    api_deps.store.put_bytes(f"videos/{video.id}/original.mp4", b"x")
    api_deps.store.put_bytes(upload_key(video.id), b"y")
    assert client.delete(f"/v1/videos/{video.id}", headers=auth).status_code == 204
    assert client.get(f"/v1/videos/{video.id}", headers=auth).status_code == 404
    assert api_deps.store.list_page(f"videos/{video.id}/").items == []
    assert api_deps.store.head(upload_key(video.id)) is None
    assert table_counts(db)["videos"] == 0


def test_reads_survive_a_redis_outage(api_settings, database_url: str, owner: Auth, db: Pool):
    from serve_apps.api.app import create_app

    key, auth = owner
    video = make_video(db, key)
    dead = api_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    deps = ApiDeps.open(dead, database_url=database_url)
    try:
        with TestClient(create_app(deps)) as down:
            r = down.get(f"/v1/videos/{video.id}", headers=auth)
            assert r.status_code == 200 and r.json()["id"] == str(video.id)
            ready = down.get("/ready")
            # Degraded, not unready: the instance still serves reads and creates (issue #12).
            assert ready.status_code == 200 and ready.json()["status"] == "degraded"
            assert ready.json()["checks"]["db"] == "ok"
            assert ready.json()["checks"]["redis"].startswith("error")
    finally:
        deps.close()
