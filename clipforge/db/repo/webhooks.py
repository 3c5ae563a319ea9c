"""Webhook registrations and their deliveries (`webhooks`, `webhook_deliveries`).

Signing, the SSRF guard and the delivery job live in `clipforge.webhooks`; this module only
reads and writes the rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from clipforge.db.pool import Conn
from clipforge.pagination import Cursor


@dataclass(frozen=True, slots=True)
class Webhook:
    """A registered receiver (the signing secret is shown once, at creation).

    Attributes:
        id: webhook id.
        owner_key_id: API key that registered it; it receives events of that key's videos.
        url: receiver URL (http or https, public address).
        events: subscribed event names.
    """

    id: uuid.UUID
    owner_key_id: uuid.UUID
    url: str
    events: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """What sending one delivery needs: the event's body and its webhook's URL and secret."""

    payload: dict[str, Any]
    event: str
    url: str
    secret: str


def _webhook(row: dict[str, Any]) -> Webhook:
    return Webhook(
        id=row["id"],
        owner_key_id=row["owner_key_id"],
        url=row["url"],
        events=tuple(row["events"]),
        created_at=row["created_at"],
    )


def insert_webhook(
    conn: Conn, *, owner_key_id: uuid.UUID, url: str, secret: str, events: Sequence[str]
) -> Webhook:
    """Store a receiver (URL and events already checked by the caller)."""
    row = conn.execute(
        """INSERT INTO webhooks (id, owner_key_id, url, secret, events) VALUES (%s, %s, %s, %s, %s)
           RETURNING id, owner_key_id, url, events, created_at""",
        (uuid.uuid4(), owner_key_id, url, secret, list(events)),
    ).fetchone()
    assert row is not None
    return _webhook(row)


def webhooks_page(
    conn: Conn, *, owner_key_id: uuid.UUID, limit: int, cursor: Cursor | None = None
) -> list[Webhook]:
    """Up to `limit` of a key's webhooks after `cursor`, oldest first (keyset order)."""
    rows = conn.execute(
        """SELECT id, owner_key_id, url, events, created_at FROM webhooks
           WHERE owner_key_id = %(o)s
             AND (%(t)s::timestamptz IS NULL OR (created_at, id) > (%(t)s::timestamptz, %(i)s::uuid))
           ORDER BY created_at, id LIMIT %(n)s""",
        {
            "o": owner_key_id,
            "n": limit,
            "t": cursor.created_at if cursor else None,
            "i": cursor.id if cursor else None,
        },
    ).fetchall()
    return [_webhook(r) for r in rows]


def delete_webhook(conn: Conn, *, owner_key_id: uuid.UUID, webhook_id: uuid.UUID) -> bool:
    """Delete a key's webhook (pending deliveries go with it); False if it is not theirs."""
    cur = conn.execute(
        "DELETE FROM webhooks WHERE id = %s AND owner_key_id = %s", (webhook_id, owner_key_id)
    )
    return cur.rowcount == 1


def subscribed_webhook_ids(conn: Conn, *, owner_key_id: uuid.UUID, event: str) -> list[uuid.UUID]:
    """The key's webhooks subscribed to `event`, in id order."""
    rows = conn.execute(
        "SELECT id FROM webhooks WHERE owner_key_id = %s AND %s = ANY(events) ORDER BY id",
        (owner_key_id, event),
    ).fetchall()
    return [r["id"] for r in rows]


def insert_delivery(
    conn: Conn,
    *,
    delivery_id: uuid.UUID,
    webhook_id: uuid.UUID,
    event: str,
    payload: dict[str, Any],
) -> None:
    """Record one event for one webhook (status `pending` until its job delivers it)."""
    conn.execute(
        """INSERT INTO webhook_deliveries (id, webhook_id, event, payload)
           VALUES (%s, %s, %s, %s)""",
        (delivery_id, webhook_id, event, Jsonb(payload)),
    )


def get_pending_delivery(conn: Conn, *, delivery_id: uuid.UUID) -> PendingDelivery | None:
    """A delivery with its webhook's URL and secret; None once the webhook was deleted."""
    row = conn.execute(
        """SELECT d.payload, d.event, w.url, w.secret FROM webhook_deliveries d
           JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = %s""",
        (delivery_id,),
    ).fetchone()
    return PendingDelivery(**row) if row is not None else None


def record_delivery_attempt(
    conn: Conn,
    *,
    delivery_id: uuid.UUID,
    status: str,
    response_code: int | None,
    error: str | None,
) -> None:
    """Count one attempt with its outcome (`delivered`, `pending` for a retry, `failed`)."""
    conn.execute(
        """UPDATE webhook_deliveries
           SET attempts = attempts + 1, response_code = %s, last_error = %s, status = %s,
               delivered_at = CASE WHEN %s = 'delivered' THEN now() END
           WHERE id = %s""",
        (response_code, error, status, status, delivery_id),
    )
