"""Webhooks: registrations, signed event deliveries, and the `webhook` job kind that sends them.

An event is recorded as one `webhook_deliveries` row plus one queue job per subscribed webhook,
inside the transaction that caused it (`emit_video_event` is called by the pipeline stage that
completes a video), so an event is never announced for work that rolled back and never lost
for work that committed. Delivery runs later through the durable queue: retries with backoff
and a dead letter come from the queue, not from code here.

Each request carries `ClipForge-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "t.body")>`,
the scheme Stripe popularised: the timestamp inside the MAC lets receivers refuse replays.
Receiver URLs pass the same SSRF guard as source URLs, at registration and again on every
delivery (DNS can change in between), and the connection goes to the checked address.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Literal, get_args
from urllib.parse import urlsplit, urlunsplit

import httpx

from clipforge.db.pool import Conn, Pool
from clipforge.db.repo import webhooks as repo
from clipforge.db.repo.videos import get_video
from clipforge.db.repo.webhooks import Webhook
from clipforge.errors import NotFound, TransientError, ValidationFailed
from clipforge.fetch import Network, Resolver, check_url, parse_networks, system_resolver
from clipforge.pagination import Cursor, check_limit, split_page
from clipforge.queue import Job, JobResult, QueuePolicy, enqueue
from clipforge.queue.runner import Handler
from clipforge.settings import Settings

log = logging.getLogger(__name__)

VideoEvent = Literal["video.ready", "video.failed"]
EVENTS: tuple[str, ...] = get_args(VideoEvent)
JOB_KIND = "webhook"
SIGNATURE_HEADER = "ClipForge-Signature"
_SECRET_PREFIX = "whsec_"
_MAX_ERROR_CHARS = 1000


def check_events(events: Sequence[str]) -> tuple[str, ...]:
    """Deduplicated, validated event names (`ValidationFailed` on unknown or none)."""
    unknown = sorted(set(events) - set(EVENTS))
    if unknown or not events:
        raise ValidationFailed(f"events must be a non-empty subset of {list(EVENTS)}")
    return tuple(sorted(set(events)))


def create_webhook(
    conn: Conn,
    *,
    owner_key_id: uuid.UUID,
    url: str,
    events: Sequence[str],
    allowed: tuple[Network, ...] = (),
    resolver: Resolver = system_resolver,
) -> tuple[Webhook, str]:
    """Register a receiver; returns it and its signing secret. The URL must be public."""
    checked = check_url(url, allowed=allowed, resolver=resolver)
    secret = _SECRET_PREFIX + secrets.token_urlsafe(32)
    hook = repo.insert_webhook(
        conn,
        owner_key_id=owner_key_id,
        url=checked.url,
        secret=secret,
        events=check_events(events),
    )
    return hook, secret


def list_webhooks(
    conn: Conn, *, owner_key_id: uuid.UUID, limit: int, cursor: Cursor | None = None
) -> tuple[list[Webhook], Cursor | None]:
    """One keyset page of a key's webhooks, oldest first."""
    check_limit(limit)
    rows = repo.webhooks_page(conn, owner_key_id=owner_key_id, limit=limit + 1, cursor=cursor)
    return split_page(rows, limit)


def emit_video_event(
    conn: Conn, policy: QueuePolicy, *, video_id: uuid.UUID, event: VideoEvent
) -> int:
    """Record `event` for the video's subscribed webhooks and enqueue their deliveries.

    Call it inside the transaction that moves the video to `ready` or `failed`, so the event
    exists exactly when that change commits. Returns the number of deliveries enqueued.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    video = get_video(conn, video_id=video_id)
    if video is None or video.owner_key_id is None:
        return 0
    hooks = repo.subscribed_webhook_ids(conn, owner_key_id=video.owner_key_id, event=event)
    for hook_id in hooks:
        delivery_id = uuid.uuid4()
        payload = {
            "id": str(delivery_id),
            "event": event,
            "created_at": datetime.now().astimezone().isoformat(),
            "data": {
                "video_id": str(video.id),
                "status": video.status,
                "error": video.error,
                "duration_s": video.duration_s,
            },
        }
        repo.insert_delivery(
            conn, delivery_id=delivery_id, webhook_id=hook_id, event=event, payload=payload
        )
        enqueue(
            conn,
            policy,
            kind=JOB_KIND,
            payload={"delivery_id": str(delivery_id)},
            idempotency_key=f"webhook-delivery:{delivery_id}",
        )
    return len(hooks)


def sign(secret: str, body: bytes, *, timestamp: int) -> str:
    """The signature header value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, body: bytes, header: str, *, tolerance_s: float = 300.0) -> bool:
    """Receiver-side check of a signature header (constant-time; refuses stale timestamps)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp=timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def _post_pinned(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_s: float,
    allowed: tuple[Network, ...],
) -> int:
    """POST to the address the SSRF check approved (Host header and SNI carry the name)."""
    checked = check_url(url, allowed=allowed)
    parts = urlsplit(checked.url)
    address = f"[{checked.address}]" if ":" in checked.address else checked.address
    target = urlunsplit(
        (parts.scheme, f"{address}:{checked.port}", parts.path or "/", parts.query, "")
    )
    host = checked.host if parts.port is None else f"{checked.host}:{parts.port}"
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        response = client.post(
            target,
            content=body,
            headers=headers | {"Host": host},
            extensions={"sni_hostname": checked.host},
        )
    return response.status_code


def deliver(pool: Pool, settings: Settings, job: Job) -> JobResult:
    """Send one delivery; a non-2xx answer or a network error raises so the queue retries it."""
    delivery_id = uuid.UUID(str(job.payload["delivery_id"]))
    with pool.connection() as conn:
        row = repo.get_pending_delivery(conn, delivery_id=delivery_id)
    if row is None:  # the webhook was deleted since: nothing to send
        raise NotFound(f"webhook delivery {delivery_id} no longer exists")
    body = json.dumps(row.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ClipForge-Webhooks/1",
        "ClipForge-Event": row.event,
        "ClipForge-Delivery": str(delivery_id),
        SIGNATURE_HEADER: sign(row.secret, body, timestamp=int(time.time())),
    }
    status: int | None = None
    error: str | None = None
    try:
        status = _post_pinned(
            row.url,
            body,
            headers,
            timeout_s=settings.webhook_timeout_s,
            allowed=parse_networks(settings.fetch_allow_cidrs),
        )
        if not 200 <= status < 300:
            error = f"receiver answered {status}"
    except ValidationFailed as exc:
        # The receiver's address is refused (SSRF guard): retrying cannot change that, so the
        # delivery fails for good now instead of spending its attempts on backoff.
        _record_attempt(pool, delivery_id, job, status=None, error=f"refused: {exc}", final=True)
        raise
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    _record_attempt(pool, delivery_id, job, status=status, error=error)
    if error is not None:
        raise TransientError(f"webhook delivery failed: {error}")
    return JobResult(result={"status_code": status})


def _record_attempt(
    pool: Pool,
    delivery_id: uuid.UUID,
    job: Job,
    *,
    status: int | None,
    error: str | None,
    final: bool = False,
) -> None:
    # Written in its own transaction: the outcome must be visible even when the job then fails.
    final = final or error is None or job.attempts >= job.max_attempts
    state = "delivered" if error is None else ("failed" if final else "pending")
    with pool.connection() as conn:
        repo.record_delivery_attempt(
            conn,
            delivery_id=delivery_id,
            status=state,
            response_code=status,
            error=error[:_MAX_ERROR_CHARS] if error else None,
        )


def webhook_handlers(pool: Pool, settings: Settings) -> dict[str, Handler]:
    """Queue handlers for `QueueRunner` (the `webhook` job kind)."""
    return {JOB_KIND: lambda job: deliver(pool, settings, job)}


def run_delivery_worker(
    settings: Settings,
    database_url: str,
    policy: QueuePolicy,
    *,
    until_idle: bool = False,
    worker_id: str | None = None,
) -> int:
    """Deliver queued events until stopped (SIGTERM handling is the caller's); returns the count.

    Retries, leases and backoff are the process's queue `policy` (the QUEUE_* settings). The
    pipeline worker can instead merge `webhook_handlers` into its own handlers.
    """
    import os
    import socket

    from clipforge.db.pool import create_pool
    from clipforge.queue import JobNotifier, QueueRunner, RunnerOptions

    options = RunnerOptions(policy=policy, idle_poll_s=2.0)
    name = worker_id or f"webhooks-{socket.gethostname()}-{os.getpid()}"
    notifier = None if until_idle else JobNotifier(database_url)
    with create_pool(settings, database_url, application_name="clipforge-webhooks") as pool:
        runner = QueueRunner(
            pool,
            webhook_handlers(pool, settings),
            worker_id=name,
            options=options,
            notifier=notifier,
        )
        try:
            return runner.run(until_empty=until_idle)
        finally:
            if notifier is not None:
                notifier.close()
