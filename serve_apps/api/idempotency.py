"""`Idempotency-Key` for POSTs: the same key replays the first answer instead of acting twice.

The stored answer is written in the same transaction as the resource it describes, and a
transaction-scoped advisory lock on (API key, idempotency key) serialises concurrent retries:
the second waits, then finds the first answer. So a resource is created once however many
retries race, and an answer is never stored for work that rolled back. Keys expire after a day.
A key reused with a different request body is a 409, never a silent replay of the wrong thing.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from clipforge.db.pool import Conn, Pool
from clipforge.db.repo.idempotency import (
    find_idempotent_response,
    lock_idempotency_key,
    store_idempotent_response,
)
from clipforge.errors import Conflict

REPLAY_HEADER = "Idempotent-Replayed"


def fingerprint(route: str, request: BaseModel | bytes | None) -> bytes:
    """Hash of what was asked: the route plus the canonical request body."""
    body = request.model_dump_json().encode() if isinstance(request, BaseModel) else request or b""
    return hashlib.sha256(route.encode() + b"\x00" + body).digest()


def replay(
    pool: Pool, *, api_key_id: uuid.UUID, key: str | None, request_hash: bytes
) -> JSONResponse | None:
    """The stored answer for `key`, if the request was already done (409 if it differs).

    For requests with side effects outside Postgres (storing an upload): check before doing
    them, so a retried upload is not stored twice. `run_idempotent` checks again under the lock.
    """
    if key is None:
        return None
    with pool.connection() as conn:
        previous = find_idempotent_response(conn, api_key_id=api_key_id, key=key)
    return None if previous is None else _replayed(previous, request_hash)


def _replayed(previous: dict[str, Any], request_hash: bytes) -> JSONResponse:
    if bytes(previous["request_hash"]) != request_hash:
        raise Conflict("Idempotency-Key was already used with a different request")
    return JSONResponse(
        previous["response_body"],
        status_code=previous["response_status"],
        headers={REPLAY_HEADER: "true"},
    )


def run_idempotent(
    pool: Pool,
    *,
    api_key_id: uuid.UUID,
    key: str | None,
    request_hash: bytes,
    status_code: int,
    action: Callable[[Conn], BaseModel],
) -> JSONResponse:
    """Run `action` in a transaction (once per idempotency key) and answer with its result."""
    with pool.connection() as conn, conn.transaction():
        if key is not None:
            lock_idempotency_key(conn, api_key_id=api_key_id, key=key)
            previous = find_idempotent_response(conn, api_key_id=api_key_id, key=key)
            if previous is not None:
                return _replayed(previous, request_hash)
        body = action(conn).model_dump(mode="json")
        if key is not None:
            store_idempotent_response(
                conn,
                api_key_id=api_key_id,
                key=key,
                request_hash=request_hash,
                status=status_code,
                body=body,
            )
    return JSONResponse(body, status_code=status_code)
