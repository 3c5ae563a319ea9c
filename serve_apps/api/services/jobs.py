"""Jobs and webhooks of an API key."""

from __future__ import annotations

import uuid

from clipforge.db.pool import Conn
from clipforge.db.repo.api_keys import ApiKey
from clipforge.db.repo.videos import get_video
from clipforge.db.repo.webhooks import Webhook, delete_webhook
from clipforge.errors import NotFound
from clipforge.fetch import parse_networks
from clipforge.pagination import Cursor
from clipforge.queue import Job, get_job, redrive
from clipforge.webhooks import create_webhook, list_webhooks
from serve_apps.api.deps import ApiDeps
from serve_apps.api.protocol import CreateWebhookRequest, JobOut, WebhookOut, WebhookPage


def job_out(job: Job) -> JobOut:
    """API view of a job."""
    return JobOut.model_validate(
        {name: getattr(job, name) for name in JobOut.model_fields if hasattr(job, name)}
    )


def owned_job(conn: Conn, key: ApiKey, job_id: int) -> Job:
    """The job if it works on one of the key's videos; 404 otherwise (system jobs included)."""
    job = get_job(conn, job_id=job_id)
    if (
        job is None
        or job.video_id is None
        or get_video(conn, video_id=job.video_id, owner_key_id=key.id) is None
    ):
        raise NotFound(f"job {job_id} not found")
    return job


def get(deps: ApiDeps, key: ApiKey, job_id: int) -> JobOut:
    """`GET /v1/jobs/{id}`."""
    return job_out(deps.read(key, lambda conn: owned_job(conn, key, job_id)))


def redrive_owned(conn: Conn, key: ApiKey, job_id: int) -> JobOut:
    """Re-drive a dead or failed job of the key (409 for jobs in other states)."""
    owned_job(conn, key, job_id)
    return job_out(redrive(conn, job_id=job_id))


def webhook_out(hook: Webhook, secret: str | None = None) -> WebhookOut:
    """API view of a webhook."""
    return WebhookOut(
        id=hook.id,
        url=hook.url,
        events=list(hook.events),
        created_at=hook.created_at,
        secret=secret,
    )


def register_webhook(
    deps: ApiDeps, conn: Conn, key: ApiKey, body: CreateWebhookRequest
) -> WebhookOut:
    """Create a webhook (inside the idempotent transaction); its secret is returned once."""
    hook, secret = create_webhook(
        conn,
        owner_key_id=key.id,
        url=body.url,
        events=body.events,
        allowed=parse_networks(deps.settings.fetch_allow_cidrs),
        resolver=deps.resolver,
    )
    return webhook_out(hook, secret)


def webhooks_page(deps: ApiDeps, key: ApiKey, *, limit: int, cursor: str | None) -> WebhookPage:
    """`GET /v1/webhooks`."""
    position = Cursor.decode(cursor) if cursor else None
    rows, nxt = deps.read(
        key, lambda conn: list_webhooks(conn, owner_key_id=key.id, limit=limit, cursor=position)
    )
    return WebhookPage(
        items=[webhook_out(h) for h in rows], next_cursor=nxt.encode() if nxt else None
    )


def remove_webhook(deps: ApiDeps, key: ApiKey, webhook_id: uuid.UUID) -> None:
    """`DELETE /v1/webhooks/{id}`."""
    with deps.pool.connection() as conn:
        if not delete_webhook(conn, owner_key_id=key.id, webhook_id=webhook_id):
            raise NotFound(f"webhook {webhook_id} not found")
