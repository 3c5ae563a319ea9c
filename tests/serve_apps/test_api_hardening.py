"""Issue #14: defects an outside probe found, each with the class of requests it stands for.

Real Postgres, Redis and S3-compatible server throughout; failures are injected through real
mechanisms (a Postgres trigger, an advisory lock held by the test), never by patching our code.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from clipforge.db.pool import Pool
from clipforge.db.repo.api_keys import ApiKey
from clipforge.db.repo.clips import NewClip, replace_clips
from clipforge.db.repo.exports import create_export
from clipforge.db.repo.idempotency import lock_idempotency_key
from clipforge.queue import QueuePolicy, enqueue
from clipforge.ratelimit import RateLimiter
from clipforge.storage.keys import upload_key
from serve_apps.api.app import create_app
from serve_apps.api.deps import ApiDeps
from tests.serve_apps.helpers import table_counts
from tests.utils.factories import make_video
from tests.utils.wait import wait_until

Auth = tuple[ApiKey, dict[str, str]]
PUBLIC_URL = "https://93.184.216.34/talk.mp4"
# Enough for the upload sniffer (an MP4 `ftyp` box); the import stage is not run here.
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def _upload_objects(deps: ApiDeps) -> set[str]:
    keys: set[str] = set()
    token = None
    while True:
        page = deps.store.list_page("uploads/", token=token)
        keys |= {item.key for item in page.items}
        token = page.next_token
        if token is None:
            return keys


def _video_ids(db: Pool) -> set[str]:
    with db.connection() as conn:
        return {str(r["id"]) for r in conn.execute("SELECT id FROM videos").fetchall()}


def _assert_no_orphans(deps: ApiDeps, db: Pool) -> None:
    rows = _video_ids(db)
    orphans = {k for k in _upload_objects(deps) if k.split("/")[1] not in rows}
    assert not orphans, f"objects without a video row: {orphans}"


@pytest.fixture()
def clean_uploads(api_deps: ApiDeps) -> ApiDeps:
    api_deps.store.delete_prefix("uploads/")
    return api_deps


# --- 1. control characters in any request text ------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/v1/videos", {"json": {"source_url": PUBLIC_URL, "title": "a\u0000b"}}),
        ("POST", "/v1/videos", {"json": {"source_url": PUBLIC_URL, "title": "line\nbreak"}}),
        ("POST", "/v1/videos", {"json": {"source_url": "https://93.184.216.34/a\u0000b"}}),
        ("POST", "/v1/videos", {"json": {"source_url": "http://93.184.216.34\u0000.evil/x"}}),
        ("POST", "/v1/videos", {"json": {"upload": {"size_bytes": 10}, "title": "\u009b"}}),
        (
            "POST",
            "/v1/webhooks",
            {"json": {"url": "https://a\u0000b.com/", "events": ["video.ready"]}},
        ),
        ("POST", "/v1/videos/upload?title=a%00b", {"content": MP4_HEAD}),
        ("POST", "/v1/videos/upload?title=a%1Fb", {"content": MP4_HEAD}),
        ("GET", "/v1/videos?cursor=a%00b", {}),
        ("GET", "/v1/webhooks?cursor=%07", {}),
    ],
)
def test_control_characters_are_refused_with_422(
    client: TestClient,
    owner: Auth,
    db: Pool,
    clean_uploads: ApiDeps,
    method: str,
    path: str,
    kwargs: dict[str, Any],
) -> None:
    headers = owner[1] | {"Content-Type": "video/mp4" if "upload" in path else "application/json"}
    r = client.request(method, path, headers=headers, **kwargs)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"
    assert table_counts(db)["videos"] == table_counts(db)["webhooks"] == 0
    assert _upload_objects(clean_uploads) == set()


def test_idempotency_key_header_is_validated_by_the_schema(client: TestClient, owner: Auth) -> None:
    body = {"source_url": PUBLIC_URL}
    r = client.post("/v1/videos", json=body, headers=owner[1] | {"Idempotency-Key": "a b\t"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


def test_request_bodies_are_strict(client: TestClient, owner: Auth, db: Pool) -> None:
    for body in ({"upload": {"size_bytes": "12"}}, {"upload": {"size_bytes": 12.0}}):
        r = client.post("/v1/videos", json=body, headers=owner[1])
        assert r.status_code == 422, body
    assert table_counts(db)["videos"] == 0


# --- orphans and 500s: every create and upload path failing at commit ---------------------------


@contextmanager
def failing_commits(db: Pool) -> Iterator[None]:
    """Make every INSERT or UPDATE of `videos` fail when its transaction commits."""
    with db.connection() as conn:
        conn.execute(
            """CREATE OR REPLACE FUNCTION cf_test_refuse() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'refused by test trigger'; END $$"""
        )
        conn.execute(
            """CREATE CONSTRAINT TRIGGER cf_test_refuse AFTER INSERT OR UPDATE ON videos
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cf_test_refuse()"""
        )
    try:
        yield
    finally:
        with db.connection() as conn:
            conn.execute("DROP TRIGGER IF EXISTS cf_test_refuse ON videos")
            conn.execute("DROP FUNCTION IF EXISTS cf_test_refuse()")


def test_no_object_without_a_row_when_every_create_fails_at_commit(
    client: TestClient, owner: Auth, db: Pool, clean_uploads: ApiDeps
) -> None:
    _, auth = owner
    # A presigned upload announced and PUT before the failures start (for `/uploaded`).
    made = client.post("/v1/videos", json={"upload": {"size_bytes": len(MP4_HEAD)}}, headers=auth)
    assert made.status_code == 201, made.text
    assert httpx.put(made.json()["upload"]["url"], content=MP4_HEAD, timeout=10).status_code == 200
    media = auth | {"Content-Type": "video/mp4"}
    with failing_commits(db):
        answers = [
            client.post("/v1/videos", json={"source_url": PUBLIC_URL}, headers=auth),
            client.post("/v1/videos", json={"upload": {"size_bytes": 5}}, headers=auth),
            client.post("/v1/videos/upload", content=MP4_HEAD, headers=media),
            client.post(
                "/v1/videos/upload", content=MP4_HEAD, headers=media | {"Idempotency-Key": "k1"}
            ),
            client.post(made.json()["upload"]["complete_url"], headers=auth),
        ]
    for r in answers:
        # 5. an unhandled error still carries its request id, in the header and the body.
        assert r.status_code == 500, r.text
        assert r.json()["error"]["code"] == "internal_error"
        assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
    assert table_counts(db)["videos"] == 1
    _assert_no_orphans(clean_uploads, db)


# --- 2. idempotency race on direct upload -------------------------------------------------------


def _waiting_on_advisory_locks(db: Pool) -> int:
    with db.connection() as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event = 'advisory'"
        ).fetchone()
    assert row is not None
    return int(row["n"])


def test_racing_uploads_with_one_key_store_only_the_winners_bytes(
    client: TestClient, owner: Auth, db: Pool, clean_uploads: ApiDeps
) -> None:
    key, auth = owner
    headers = auth | {"Content-Type": "video/mp4", "Idempotency-Key": "race-1"}
    bodies = [MP4_HEAD + b"first" * 10, MP4_HEAD + b"second" * 10]
    answers: dict[int, Any] = {}

    def send(i: int) -> None:
        answers[i] = client.post("/v1/videos/upload", content=bodies[i], headers=headers)

    # Hold the key's lock so both requests get past the early replay check, then let them race.
    with db.connection() as conn, conn.transaction():
        lock_idempotency_key(conn, api_key_id=key.id, key="race-1")
        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        wait_until(
            lambda: _waiting_on_advisory_locks(db) >= 2,
            timeout_s=20,
            what="both requests to wait on the key's lock",
        )
    for t in threads:
        t.join(timeout=30)
    assert sorted(r.status_code for r in answers.values()) == [202, 409]
    (winner,) = [i for i, r in answers.items() if r.status_code == 202]
    video_id = uuid.UUID(answers[winner].json()["video"]["id"])
    stored = clean_uploads.store.get_bytes(upload_key(video_id))
    assert stored == bodies[winner]
    assert _upload_objects(clean_uploads) == {upload_key(video_id)}


# --- 3. IPv4 embedded in IPv6 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://[2002:7f00:1::1]/",  # 6to4 of 127.0.0.1
        "http://[2002:a9fe:a9fe::1]/latest/meta-data/",  # 6to4 of 169.254.169.254
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64
        "http://[::ffff:10.0.0.1]/",  # IPv4-mapped
        "http://[::127.0.0.1]/",  # IPv4-compatible
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    ],
)
def test_ipv6_wrapped_private_addresses_are_refused(
    client: TestClient, owner: Auth, db: Pool, url: str
) -> None:
    source = client.post("/v1/videos", json={"source_url": url}, headers=owner[1])
    hook = client.post(
        "/v1/webhooks", json={"url": url, "events": ["video.ready"]}, headers=owner[1]
    )
    assert source.status_code == hook.status_code == 422, (source.text, hook.text)
    assert table_counts(db)["videos"] == table_counts(db)["webhooks"] == 0


# --- 4. another key's objects answer exactly like missing ones ----------------------------------


def _shape(r: Any, *ids: object) -> tuple[int, str, str]:
    error = r.json()["error"]
    message = error["message"]
    for value in ids:
        message = message.replace(str(value), "<id>")
    return r.status_code, error["code"], message


def test_other_keys_objects_are_indistinguishable_from_missing_ones(
    client: TestClient, owner: Auth, other: Auth, db: Pool
) -> None:
    key, _ = owner
    video = make_video(db, key)
    with db.connection() as conn, conn.transaction():
        (clip,) = replace_clips(
            conn,
            video_id=video.id,
            clips=[NewClip(1, 0.0, 15.0, 90.0, {"hook": 0.5}, "r", "T", "h", "s", "v")],
        )
        export = create_export(conn, clip_id=clip.id, aspect_ratio="9:16", caption_style="bold")
        job = enqueue(conn, QueuePolicy.defaults(), kind="import", video_id=video.id)
    hook_id = uuid.uuid4()
    missing = uuid.uuid4()
    theirs = other[1]
    routes = [
        ("GET", "/v1/videos/{}", video.id),
        ("DELETE", "/v1/videos/{}", video.id),
        ("POST", "/v1/videos/{}/uploaded", video.id),
        ("GET", "/v1/videos/{}/transcript", video.id),
        ("GET", "/v1/videos/{}/clips", video.id),
        ("GET", "/v1/clips/{}/exports", clip.id),
        ("POST", "/v1/clips/{}/exports", clip.id),
        ("GET", "/v1/exports/{}", export.id),
        ("GET", "/v1/jobs/{}", job.id),
        ("POST", "/v1/jobs/{}/redrive", job.id),
        ("DELETE", "/v1/webhooks/{}", hook_id),
    ]
    for method, template, real in routes:
        absent: object = 2**62 if isinstance(real, int) else missing
        kwargs: dict[str, Any] = {"json": {}} if template.endswith("exports") else {}
        mine = client.request(method, template.format(real), headers=theirs, **kwargs)
        gone = client.request(method, template.format(absent), headers=theirs, **kwargs)
        assert _shape(mine, real) == _shape(gone, absent), (method, template, mine.text)
        assert mine.status_code == 404


# --- 6. authentication before the body ----------------------------------------------------------


def test_malformed_bodies_are_401_before_authentication_and_one_code_after(
    client: TestClient, owner: Auth
) -> None:
    json_type = {"Content-Type": "application/json"}
    broken = b'{"source_url": "https://x'
    anonymous = client.post("/v1/videos", content=broken, headers=json_type)
    assert anonymous.status_code == 401, anonymous.text
    wrong = json_type | {"Authorization": "Bearer cf_not_a_key"}
    assert client.post("/v1/webhooks", content=broken, headers=wrong).status_code == 401
    for body in (broken, b"\xff\xfe{}", b'{"a": "\xc3"}'):
        r = client.post("/v1/videos", content=body, headers=owner[1] | json_type)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed_json"), body


# --- 7. security headers ------------------------------------------------------------------------


def test_security_headers(client: TestClient, owner: Auth, api_deps: ApiDeps) -> None:
    for r in (client.get("/health"), client.get("/nope"), client.get("/v1/videos")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "strict-transport-security" not in r.headers
    hook = client.post(
        "/v1/webhooks",
        json={"url": "https://93.184.216.34/hook", "events": ["video.ready"]},
        headers=owner[1],
    )
    assert hook.status_code == 201 and hook.json()["secret"]
    assert hook.headers["cache-control"] == "no-store"
    app = create_app(api_deps)
    with TestClient(app, base_url="https://testserver") as tls:
        assert tls.get("/health").headers["strict-transport-security"].startswith("max-age=")
    proto = {"X-Forwarded-Proto": "https"}
    with TestClient(app, client=("127.0.0.1", 40000)) as proxied:
        assert "strict-transport-security" in proxied.get("/health", headers=proto).headers
    with TestClient(app, client=("203.0.113.9", 40000)) as direct:  # not a trusted proxy
        assert "strict-transport-security" not in direct.get("/health", headers=proto).headers


# --- 8. /metrics and the documentation ----------------------------------------------------------


def _app_with(api_deps: ApiDeps, **settings: Any) -> TestClient:
    changed = api_deps.settings.model_copy(update=settings)
    return TestClient(create_app(dataclasses.replace(api_deps, settings=changed)))


def test_metrics_need_the_token_and_are_off_in_production_without_one(
    api_deps: ApiDeps,
) -> None:
    from pydantic import SecretStr

    with _app_with(api_deps, metrics_token=SecretStr("s3cret-token")) as app:
        assert app.get("/metrics").status_code == 401
        assert app.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = app.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200 and "clipforge_http_requests_total" in ok.text
    with _app_with(api_deps, environment="production") as prod:
        assert prod.get("/metrics").status_code == 404
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert prod.get(path).status_code == 404, path
    with _app_with(api_deps, environment="production", api_docs_enabled=True) as docs:
        assert docs.get("/openapi.json").status_code == 200


# --- also seen ----------------------------------------------------------------------------------


def test_failed_authentications_are_rate_limited_per_address(
    api_deps: ApiDeps, owner: Auth
) -> None:
    limiter = RateLimiter(
        api_deps.redis, per_minute=6, burst=3, prefix=f"cftest:authfail:{uuid.uuid4().hex}:"
    )
    deps = dataclasses.replace(api_deps, auth_failures=limiter)
    bad = {"Authorization": "Bearer cf_guess"}
    with TestClient(create_app(deps)) as app:
        codes = [app.get("/v1/videos", headers=bad).status_code for _ in range(5)]
        assert codes[:3] == [401, 401, 401] and codes[-1] == 429, codes
        limited = app.get("/v1/videos", headers=bad)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert app.get("/v1/videos", headers=owner[1]).status_code == 200  # real keys unaffected


def test_presigned_upload_must_match_the_declared_size_and_type(
    client: TestClient, owner: Auth, api_deps: ApiDeps
) -> None:
    _, auth = owner
    spec = {"size_bytes": len(MP4_HEAD), "content_type": "video/mp4"}
    made = client.post("/v1/videos", json={"upload": spec}, headers=auth).json()
    video_id = uuid.UUID(made["video"]["id"])
    longer = MP4_HEAD + b"extra"
    put = httpx.put(
        made["upload"]["url"], content=longer, headers={"Content-Type": "video/mp4"}, timeout=10
    )
    assert put.status_code == 200, put.text
    done = client.post(made["upload"]["complete_url"], headers=auth)
    assert done.status_code == 422 and done.json()["error"]["code"] == "upload_mismatch"
    assert "declared" in done.json()["error"]["message"]
    assert api_deps.store.head(upload_key(video_id)) is None
    # A PUT with another type: refused by the signature, or by /uploaded.
    put = httpx.put(
        made["upload"]["url"], content=MP4_HEAD, headers={"Content-Type": "text/html"}, timeout=10
    )
    if put.status_code == 200:
        done = client.post(made["upload"]["complete_url"], headers=auth)
        assert done.status_code == 422 and done.json()["error"]["code"] == "upload_mismatch"
        assert api_deps.store.head(upload_key(video_id)) is None
    else:
        assert 400 <= put.status_code < 500
    put = httpx.put(
        made["upload"]["url"], content=MP4_HEAD, headers={"Content-Type": "video/mp4"}, timeout=10
    )
    assert put.status_code == 200
    assert client.post(made["upload"]["complete_url"], headers=auth).status_code == 202
