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
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from clipforge.db.pool import Conn, Pool
from clipforge.errors import Conflict

REPLAY_HEADER = "Idempotent-Replayed"
_TTL = "24 hours"


def fingerprint(route: str, request: BaseModel | bytes | None) -> bytes:
    """Hash of what was asked: the route plus the canonical request body."""
    body = request.model_dump_json().encode() if isinstance(request, BaseModel) else request or b""
    return hashlib.sha256(route.encode() + b"\x00" + body).digest()


def _lookup(conn: Conn, api_key_id: uuid.UUID, key: str) -> dict[str, Any] | None:
    return conn.execute(
        """SELECT request_hash, response_status, response_body FROM idempotency_keys
           WHERE api_key_id = %s AND key = %s AND created_at > now() - %s::interval""",
        (api_key_id, key, _TTL),
    ).fetchone()


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
        previous = _lookup(conn, api_key_id, key)
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
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{api_key_id}:{key}",)
            )
            previous = _lookup(conn, api_key_id, key)
            if previous is not None:
                return _replayed(previous, request_hash)
        body = action(conn).model_dump(mode="json")
        if key is not None:
            conn.execute(
                """INSERT INTO idempotency_keys
                       (api_key_id, key, request_hash, response_status, response_body)
                   VALUES (%s, %s, %s, %s, %s)
                   ON CONFLICT (api_key_id, key) DO UPDATE SET
                       request_hash = EXCLUDED.request_hash,
                       response_status = EXCLUDED.response_status,
                       response_body = EXCLUDED.response_body, created_at = now()""",
                (api_key_id, key, request_hash, status_code, Jsonb(body)),
            )
    return JSONResponse(body, status_code=status_code)
