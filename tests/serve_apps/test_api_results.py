"""Transcripts, clips, exports, jobs, webhooks, health, and hostile input (standalone app)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from fastapi.testclient import TestClient

from clipforge.db.pool import Pool
from clipforge.db.repo.api_keys import ApiKey
from clipforge.db.repo.clips import NewClip, replace_clips
from clipforge.db.repo.exports import update_export
from clipforge.db.repo.transcripts import replace_transcript
from clipforge.fetch import parse_networks
from clipforge.queue import Job, QueuePolicy, claim, enqueue, fail, get_job
from clipforge.queue.backoff import Backoff
from clipforge.settings import Settings
from clipforge.types import ModelInfo, Segment, Transcript, Word
from clipforge.webhooks import (
    create_webhook,
    deliver,
    emit_video_event,
    run_delivery_worker,
    verify,
)
from serve_apps.api.app import create_app
from serve_apps.api.deps import ApiDeps
from tests.serve_apps.helpers import table_counts
from tests.utils.factories import make_key, make_video
from tests.utils.wait import wait_until

Auth = tuple[ApiKey, dict[str, str]]
MODEL = ModelInfo(name="whisper-tiny.en", version="t+sha.abc", sha256="abc")


def _transcript() -> Transcript:
    words = (Word(0.0, 0.4, "Hello", 0.9), Word(0.5, 1.0, "world.", 0.8))
    more = (Word(2.0, 2.5, "Second", 0.9, 1), Word(2.6, 3.0, "line.", 0.9, 1))  # speaker 1
    return Transcript(
        "en",
        3.5,
        (Segment(0.0, 1.0, "Hello world.", words), Segment(2.0, 3.0, "Second line.", more)),
        MODEL,
    )


def _clips(n: int) -> list[NewClip]:
    return [
        NewClip(
            i + 1, i * 20.0, i * 20.0 + 15, 90.0 - i, {"hook": 0.5}, "r", f"T{i}", "h", "s", "v"
        )
        for i in range(n)
    ]


def test_transcript_formats_and_not_ready(client: TestClient, owner: Auth, db: Pool):
    key, auth = owner
    video = make_video(db, key)
    missing = client.get(f"/v1/videos/{video.id}/transcript", headers=auth)
    assert missing.status_code == 404 and "no transcript yet" in missing.json()["error"]["message"]
    with db.connection() as conn:
        replace_transcript(conn, video_id=video.id, transcript=_transcript())
    body = client.get(f"/v1/videos/{video.id}/transcript", headers=auth).json()
    assert body["text"] == "Hello world. Second line."
    assert [w["text"] for s in body["segments"] for w in s["words"]] == [
        "Hello",
        "world.",
        "Second",
        "line.",
    ]
    assert body["model"] == {"name": "whisper-tiny.en", "version": "t+sha.abc"}
    speakers = [w["speaker"] for s in body["segments"] for w in s["words"]]
    assert speakers == [None, None, 1, 1]  # speaker turns; unknown for the first two words
    srt = client.get(f"/v1/videos/{video.id}/transcript?format=srt", headers=auth)
    assert srt.headers["content-type"].startswith("application/x-subrip")
    assert srt.text.startswith("1\n00:00:00,000 --> ") and "Hello world." in srt.text
    vtt = client.get(f"/v1/videos/{video.id}/transcript", params={"format": "vtt"}, headers=auth)
    assert vtt.text.startswith("WEBVTT") and "Second line." in vtt.text
    assert (
        client.get(f"/v1/videos/{video.id}/transcript?format=txt", headers=auth).status_code == 422
    )


def test_clips_pagination_and_exports(
    client: TestClient, owner: Auth, other: Auth, db: Pool, api_deps
):
    key, auth = owner
    video = make_video(db, key, status="ready")
    with db.connection() as conn:
        stored = replace_clips(conn, video_id=video.id, clips=_clips(5))
    first = client.get(f"/v1/videos/{video.id}/clips", params={"limit": 3}, headers=auth).json()
    second = client.get(
        f"/v1/videos/{video.id}/clips",
        params={"limit": 3, "cursor": first["next_cursor"]},
        headers=auth,
    ).json()
    ids = [c["id"] for c in first["items"] + second["items"]]
    assert sorted(ids) == sorted(str(c.id) for c in stored) and second["next_cursor"] is None
    bad = client.get(f"/v1/videos/{video.id}/clips", params={"cursor": "%%%"}, headers=auth)
    assert bad.status_code == 422

    clip_id = stored[0].id
    body = {"aspect_ratio": "1:1", "caption_style": "bold", "layout": "split"}
    made = client.post(f"/v1/clips/{clip_id}/exports", json=body, headers=auth)
    assert made.status_code == 202, made.text
    export = made.json()["export"]
    assert export["status"] == "queued" and export["url"] is None and export["layout"] == "split"
    with db.connection() as conn:
        job = get_job(conn, job_id=made.json()["job_id"])
        assert (
            job is not None and job.kind == "export" and job.payload == {"export_id": export["id"]}
        )
        api_deps.store.put_bytes(f"videos/{video.id}/exports/{export['id']}.mp4", b"mp4")
        api_deps.store.put_bytes(f"videos/{video.id}/exports/{export['id']}.srt", b"1\n")
        update_export(
            conn,
            export_id=uuid.UUID(export["id"]),
            status="ready",
            object_key=f"videos/{video.id}/exports/{export['id']}.mp4",
        )
    ready = client.get(f"/v1/exports/{export['id']}", headers=auth).json()
    assert ready["status"] == "ready" and httpx.get(ready["url"]).content == b"mp4"
    # With S3 the caption files are presigned S3 URLs too (the API never proxies media).
    srt_url = ready["caption_urls"]["srt"]
    assert "X-Amz-Signature=" in srt_url and httpx.get(srt_url).content == b"1\n"
    assert ready["layout"] == "split"
    listed = client.get(f"/v1/clips/{clip_id}/exports", headers=auth).json()
    assert [e["id"] for e in listed["items"]] == [export["id"]]
    assert client.get(f"/v1/exports/{export['id']}", headers=other[1]).status_code == 404
    assert (
        client.post(f"/v1/clips/{clip_id}/exports", json=body, headers=other[1]).status_code == 404
    )
    bad_ratio = client.post(
        f"/v1/clips/{clip_id}/exports", json={"aspect_ratio": "4:3"}, headers=auth
    )
    assert bad_ratio.status_code == 422
    bad_layout = client.post(f"/v1/clips/{clip_id}/exports", json={"layout": "pip"}, headers=auth)
    assert bad_layout.status_code == 422 and "layout" in bad_layout.text
    default = client.post(f"/v1/clips/{clip_id}/exports", json={}, headers=auth)
    assert default.status_code == 202 and default.json()["export"]["layout"] == "auto"


def test_job_get_and_redrive(client: TestClient, owner: Auth, other: Auth, db: Pool):
    key, auth = owner
    video = make_video(db, key)
    with db.connection() as conn, conn.transaction():
        job = enqueue(
            conn, QueuePolicy.defaults(), kind="import", video_id=video.id, max_attempts=1
        )
    with db.connection() as conn, conn.transaction():
        claim(conn, worker_id="w", limit=1, lease_s=30)
        fail(conn, job_id=job.id, worker_id="w", error="boom", retryable=True, backoff=Backoff())
    got = client.get(f"/v1/jobs/{job.id}", headers=auth).json()
    assert got["state"] == "dead" and got["last_error"] == "boom"
    assert client.get(f"/v1/jobs/{job.id}", headers=other[1]).status_code == 404
    redriven = client.post(f"/v1/jobs/{job.id}/redrive", headers=auth)
    assert redriven.status_code == 200 and redriven.json()["state"] == "queued"
    assert client.post(f"/v1/jobs/{job.id}/redrive", headers=auth).status_code == 409
    assert client.get("/v1/jobs/99999999", headers=auth).status_code == 404
    assert client.get("/v1/jobs/abc", headers=auth).status_code == 422


@contextmanager
def receiver(statuses: list[int]) -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A local webhook receiver answering `statuses` in turn; yields its URL and the requests."""
    seen: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((dict(self.headers), body))
            self.send_response(statuses[min(len(seen), len(statuses)) - 1])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", seen
    finally:
        server.shutdown()
        server.server_close()


def test_webhooks_signed_delivery_with_retry(
    client: TestClient, owner: Auth, db: Pool, api_deps: ApiDeps
):
    import dataclasses

    key, auth = owner
    refused = client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["video.ready"]},
        headers=auth,
    )
    assert refused.status_code == 422  # loopback receivers are refused like source URLs
    trusted = api_deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.0/8"]})
    deps = dataclasses.replace(api_deps, settings=trusted)
    with receiver([500, 204]) as (url, seen), TestClient(create_app(deps)) as app:
        made = app.post("/v1/webhooks", json={"url": url, "events": ["video.ready"]}, headers=auth)
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        assert app.get("/v1/webhooks", headers=auth).json()["items"][0]["secret"] is None
        video = make_video(db, key, status="ready")
        with db.connection() as conn, conn.transaction():
            assert (
                emit_video_event(
                    conn, QueuePolicy.defaults(), video_id=video.id, event="video.ready"
                )
                == 1
            )
            assert (
                emit_video_event(
                    conn, QueuePolicy.defaults(), video_id=video.id, event="video.failed"
                )
                == 0
            )

        def claimed() -> list[Job]:
            with db.connection() as conn, conn.transaction():
                return claim(conn, worker_id="w", limit=1, lease_s=30, kinds=["webhook"])

        for attempt in (1, 2):
            # The retry is due 1 ms after the failing transaction's start (Postgres's now()): a
            # claim that starts within that millisecond finds nothing yet.
            (job,) = wait_until(claimed, timeout_s=10, what="the webhook job claimable")
            try:
                deliver(db, trusted, job)
                outcome = "ok"
            except Exception as exc:  # the queue runner would record this and retry
                outcome = type(exc).__name__
                with db.connection() as conn, conn.transaction():
                    fail(
                        conn,
                        job_id=job.id,
                        worker_id="w",
                        error=str(exc),
                        retryable=True,
                        backoff=Backoff(base_s=0.001, cap_s=0.001),
                    )
            assert outcome == ("TransientError" if attempt == 1 else "ok")
        headers, body = seen[-1]
        assert len(seen) == 2 and verify(secret, body, headers["ClipForge-Signature"])
        assert not verify("whsec_wrong", body, headers["ClipForge-Signature"])
        payload = json.loads(body)
        assert payload["event"] == "video.ready" and payload["data"]["video_id"] == str(video.id)
        with db.connection() as conn:
            row = conn.execute(
                "SELECT status, attempts, response_code FROM webhook_deliveries"
            ).fetchone()
        assert row == {"status": "delivered", "attempts": 2, "response_code": 204}
        hook_id = made.json()["id"]
        assert app.delete(f"/v1/webhooks/{hook_id}", headers=auth).status_code == 204
        assert app.delete(f"/v1/webhooks/{hook_id}", headers=auth).status_code == 404


def test_webhook_delivery_worker_retries_under_the_queue_policy(
    db: Pool, settings: Settings, database_url: str
):
    """`clipforge webhooks deliver` once built its own runner options and retried after the
    default 1-2 s whatever QUEUE_BACKOFF_* said; its jobs now follow the process's policy."""
    trusted = settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.0/8"]})
    slow = QueuePolicy.defaults().replace(max_attempts=3, backoff=Backoff(base_s=100, cap_s=100))
    key, _ = make_key(db)
    video = make_video(db, key, status="ready")
    with receiver([500]) as (url, seen):
        with db.connection() as conn, conn.transaction():
            create_webhook(
                conn,
                owner_key_id=key.id,
                url=url,
                events=["video.ready"],
                allowed=parse_networks(trusted.fetch_allow_cidrs),
            )
            assert emit_video_event(conn, slow, video_id=video.id, event="video.ready") == 1
        assert run_delivery_worker(trusted, database_url, slow, until_idle=True) == 1
    with db.connection() as conn:
        job = conn.execute(
            "SELECT state, attempts, max_attempts,"
            " EXTRACT(EPOCH FROM run_after - now()) AS wait_s FROM jobs WHERE kind = 'webhook'"
        ).fetchone()
    assert len(seen) == 1
    assert job is not None and (job["state"], job["attempts"], job["max_attempts"]) == (
        "queued",
        1,
        3,
    )
    assert 40 < float(job["wait_s"]) <= 100  # [base/2, base], less the time since the failure


def test_health_ready_metrics_openapi(client: TestClient, owner: Auth):
    started = time.perf_counter()
    assert client.get("/health").json() == {"status": "ok"}
    assert time.perf_counter() - started < 1.0
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "db": "ok",
        "redis": "ok",
        "storage": "ok",
        "disk": "ok",
    }
    client.get("/v1/videos", headers=owner[1])
    metrics = client.get("/metrics").text
    assert 'clipforge_http_requests_total{method="GET",route="/v1/videos",status="200"}' in metrics
    assert "clipforge_http_request_duration_seconds_bucket" in metrics
    assert "clipforge_cache_requests_total" in metrics and "clipforge_queue_depth" in metrics
    spec = client.get("/openapi.json").json()
    assert "ErrorResponse" in spec["components"]["schemas"]
    assert spec["paths"]["/v1/videos"]["post"]["responses"]["401"]["content"]
    described = spec["components"]["schemas"]["CreateVideoRequest"]["properties"]
    assert all(field.get("description") for field in described.values())
    models = client.post(
        "/v1/models/highlights", json={"windows": [{"text": "hi"}]}, headers=owner[1]
    )
    assert models.status_code == 503 and models.json()["error"]["code"] == "models_unavailable"


INJECTIONS = [
    "'; DROP TABLE videos; --",
    "1' OR '1'='1",
    '"); DELETE FROM jobs; --',
    "' UNION SELECT key_hash FROM api_keys --",
]


def test_sql_injection_in_every_string_parameter(client: TestClient, owner: Auth, db: Pool):
    before = table_counts(db)
    for evil in INJECTIONS:
        # A key per string keeps the probes under the per-key rate limit.
        key, raw = make_key(db, "probe")
        auth = {"Authorization": f"Bearer {raw}"}
        video = make_video(db, key)
        probes = [
            client.post("/v1/videos", json={"source_url": evil}, headers=auth),
            client.post(
                "/v1/videos",
                json={"source_url": f"https://93.184.216.34/{evil}", "title": evil},
                headers=auth,
            ),
            client.get("/v1/videos", params={"status": evil}, headers=auth),
            client.get("/v1/videos", params={"cursor": evil}, headers=auth),
            client.get(f"/v1/videos/{evil}", headers=auth),
            client.get(f"/v1/videos/{video.id}/transcript", params={"format": evil}, headers=auth),
            client.get(f"/v1/videos/{video.id}/clips", params={"cursor": evil}, headers=auth),
            client.post(f"/v1/clips/{evil}/exports", json={}, headers=auth),
            client.post(
                f"/v1/clips/{uuid.uuid4()}/exports", json={"caption_style": evil}, headers=auth
            ),
            client.get(f"/v1/jobs/{evil}", headers=auth),
            client.post(
                "/v1/webhooks", json={"url": evil, "events": ["video.ready"]}, headers=auth
            ),
            client.post("/v1/webhooks", json={"url": PUBLIC_HOOK, "events": [evil]}, headers=auth),
            client.get("/v1/videos", headers=auth | {"Idempotency-Key": evil}),
            client.post(
                "/v1/videos",
                json={"source_url": PUBLIC_HOOK},
                headers=auth | {"Idempotency-Key": evil},
            ),
            client.get("/v1/videos", headers={"Authorization": f"Bearer {evil}"}),
            client.post("/v1/videos/upload", content=b"x", headers=auth | {"Content-Type": evil}),
        ]
        codes = [p.status_code for p in probes]
        refused = [c for i, c in enumerate(codes) if i not in (1, 12)]
        assert set(refused) <= {400, 401, 404, 409, 415, 422}, codes
        assert codes[1] == 202 and all(
            400 <= c < 500 for i, c in enumerate(codes) if i not in (1, 12)
        ), codes
        assert codes[12] == 200  # GET ignores Idempotency-Key
        stored = probes[1].json()["video"]
        assert stored["metadata"]["title"] == evil  # stored verbatim: parameters, never SQL text
    after = table_counts(db)
    n = len(INJECTIONS)
    assert after["videos"] == before["videos"] + 2 * n  # one from the factory, one from the API
    assert after["api_keys"] == before["api_keys"] + n
    assert after["jobs"] == before["jobs"] + n
    with db.connection() as conn:
        tables = {
            r["tablename"]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
    assert {"videos", "jobs", "api_keys", "clips", "exports", "transcripts"} <= tables


PUBLIC_HOOK = "https://93.184.216.34/hook"
