"""Stored answers of idempotent API requests (`Idempotency-Key`), kept for a day."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

from clipforge.db.pool import Conn

_TTL = "24 hours"


def lock_idempotency_key(conn: Conn, *, api_key_id: uuid.UUID, key: str) -> None:
    """Serialise requests with the same key until the caller's transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{api_key_id}:{key}",))


def find_idempotent_response(
    conn: Conn, *, api_key_id: uuid.UUID, key: str
) -> dict[str, Any] | None:
    """The unexpired stored answer (`request_hash`, `response_status`, `response_body`)."""
    return conn.execute(
        """SELECT request_hash, response_status, response_body FROM idempotency_keys
           WHERE api_key_id = %s AND key = %s AND created_at > now() - %s::interval""",
        (api_key_id, key, _TTL),
    ).fetchone()


def store_idempotent_response(
    conn: Conn,
    *,
    api_key_id: uuid.UUID,
    key: str,
    request_hash: bytes,
    status: int,
    body: Any,
) -> None:
    """Record the answer to `key` (replacing an expired one)."""
    conn.execute(
        """INSERT INTO idempotency_keys
               (api_key_id, key, request_hash, response_status, response_body)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (api_key_id, key) DO UPDATE SET
               request_hash = EXCLUDED.request_hash,
               response_status = EXCLUDED.response_status,
               response_body = EXCLUDED.response_body, created_at = now()""",
        (api_key_id, key, request_hash, status, Jsonb(body)),
    )
