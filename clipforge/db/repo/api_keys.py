"""API keys. Only a SHA-256 of each key is stored; the key itself is shown once at creation.

Keys carry 32 random bytes, so an unsalted fast hash is safe here (nothing to brute-force),
and it lets authentication look the key up by an indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from clipforge.db.pool import AsyncConn, Conn
from clipforge.errors import ValidationFailed

_KEY_PREFIX = "cf_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key (without the secret).

    Attributes:
        id: key id, owner of the videos created with it.
        name: operator-chosen label.
        prefix: first characters of the key, to recognise it in lists and logs.
    """

    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def hash_key(raw_key: str) -> bytes:
    """The digest stored for a key."""
    return hashlib.sha256(raw_key.encode()).digest()


def create_api_key(conn: Conn, *, name: str) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the raw key (which is not stored anywhere)."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValidationFailed("key name must be 1-200 characters")
    raw = _KEY_PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        """INSERT INTO api_keys (id, name, prefix, key_hash) VALUES (%s, %s, %s, %s)
           RETURNING id, name, prefix, created_at, revoked_at""",
        (uuid.uuid4(), name, raw[:10], hash_key(raw)),
    ).fetchone()
    assert row is not None
    return ApiKey(**row), raw


_AUTHENTICATE = """SELECT id, name, prefix, created_at, revoked_at FROM api_keys
                   WHERE key_hash = %s AND revoked_at IS NULL"""


def well_formed(raw_key: str) -> bool:
    """Whether `raw_key` could be a key at all (others are refused without a query)."""
    return raw_key.startswith(_KEY_PREFIX) and len(raw_key) <= 100


def authenticate(conn: Conn, *, raw_key: str) -> ApiKey | None:
    """The active key matching `raw_key`, or None."""
    if not well_formed(raw_key):
        return None
    row = conn.execute(_AUTHENTICATE, (hash_key(raw_key),)).fetchone()
    return ApiKey(**row) if row else None


async def authenticate_async(conn: AsyncConn, *, digest: bytes) -> ApiKey | None:
    """`authenticate` on an asyncio connection, by the key's `hash_key` digest."""
    cur = await conn.execute(_AUTHENTICATE, (digest,))
    row = await cur.fetchone()
    return ApiKey(**row) if row else None


def get_api_key(conn: Conn, *, key_id: uuid.UUID) -> ApiKey | None:
    """One key by id, revoked or not."""
    row = conn.execute(
        "SELECT id, name, prefix, created_at, revoked_at FROM api_keys WHERE id = %s", (key_id,)
    ).fetchone()
    return ApiKey(**row) if row else None


def list_api_keys(conn: Conn, *, include_revoked: bool = False) -> list[ApiKey]:
    """Keys, oldest first (active only unless `include_revoked`)."""
    rows = conn.execute(
        """SELECT id, name, prefix, created_at, revoked_at FROM api_keys
           WHERE %s OR revoked_at IS NULL ORDER BY created_at, id""",
        (include_revoked,),
    ).fetchall()
    return [ApiKey(**row) for row in rows]


def owns_video(conn: Conn, *, key_id: uuid.UUID, video_id: uuid.UUID) -> bool:
    """Whether `key_id` is an active (not revoked) key and owns the video."""
    row = conn.execute(
        """SELECT 1 FROM videos v JOIN api_keys k ON k.id = v.owner_key_id
           WHERE v.id = %s AND k.id = %s AND k.revoked_at IS NULL""",
        (video_id, key_id),
    ).fetchone()
    return row is not None


def revoke_api_key(conn: Conn, *, key_id: uuid.UUID) -> bool:
    """Revoke a key; True if it was active."""
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (key_id,)
    )
    return cur.rowcount == 1
