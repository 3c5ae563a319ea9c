"""Jobs of the key's videos, and webhooks."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from serve_apps.api.deps import ApiRoute, AuthKey, Deps, IdempotencyKey
from serve_apps.api.idempotency import fingerprint, run_idempotent
from serve_apps.api.protocol import (
    CURSOR_PATTERN,
    CreateWebhookRequest,
    JobOut,
    WebhookOut,
    WebhookPage,
)
from serve_apps.api.routers import ERRORS
from serve_apps.api.services import jobs

router = APIRouter(prefix="/v1", tags=["jobs"], responses=ERRORS, route_class=ApiRoute)

JobId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Job id.")]


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: JobId, key: AuthKey, deps: Deps) -> JobOut:
    """A job of one of the key's videos."""
    return jobs.get(deps, key, job_id)


@router.post("/jobs/{job_id}/redrive", response_model=JobOut)
def redrive_job(job_id: JobId, key: AuthKey, deps: Deps, idem: IdempotencyKey) -> JSONResponse:
    """Queue a dead or failed job again with a fresh attempt budget."""
    return run_idempotent(
        deps.pool,
        api_key_id=key.id,
        key=idem,
        request_hash=fingerprint(f"redrive:{job_id}", None),
        status_code=200,
        action=lambda conn: jobs.redrive_owned(conn, key, job_id),
    )


@router.post("/webhooks", status_code=201, response_model=WebhookOut, tags=["webhooks"])
def create_webhook(
    body: CreateWebhookRequest, key: AuthKey, deps: Deps, idem: IdempotencyKey
) -> JSONResponse:
    """Register a receiver; deliveries are signed with the returned secret (HMAC-SHA256)."""
    return run_idempotent(
        deps.pool,
        api_key_id=key.id,
        key=idem,
        request_hash=fingerprint("webhooks", body),
        status_code=201,
        action=lambda conn: jobs.register_webhook(deps, conn, key, body),
    )


@router.get("/webhooks", response_model=WebhookPage, tags=["webhooks"])
def list_webhooks(
    key: AuthKey,
    deps: Deps,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=200, pattern=CURSOR_PATTERN, description="From `next_cursor`.")
    ] = None,
) -> WebhookPage:
    """The key's webhooks."""
    return jobs.webhooks_page(deps, key, limit=limit, cursor=cursor)


@router.delete(
    "/webhooks/{webhook_id}", status_code=204, response_class=Response, tags=["webhooks"]
)
def delete_webhook(webhook_id: uuid.UUID, key: AuthKey, deps: Deps) -> Response:
    """Stop deliveries to a receiver."""
    jobs.remove_webhook(deps, key, webhook_id)
    return Response(status_code=204)
