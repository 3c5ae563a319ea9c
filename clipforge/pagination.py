"""Keyset pagination cursors over (created_at, id).

Opaque to clients (URL-safe base64 of JSON) and strictly validated when read back, so a
tampered cursor is a 4xx, never a SQL error. Keyset rather than OFFSET keeps every page an
index range scan, however deep the client pages.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from clipforge.errors import ValidationFailed

MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position after the last row of a page.

    Attributes:
        created_at: creation time of that row.
        id: its id, breaking ties between rows created in the same microsecond.
    """

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        """The opaque string handed to clients."""
        # Canonical UTC: one instant, one token, whatever zone the row's timestamp came in.
        instant = self.created_at.astimezone(UTC).isoformat()
        raw = json.dumps({"t": instant, "i": str(self.id)}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Parse a client-supplied cursor; `ValidationFailed` on anything malformed."""
        try:
            if len(token) > 200:
                raise ValueError("too long")
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
            created = datetime.fromisoformat(data["t"])
            if created.tzinfo is None:
                raise ValueError("naive timestamp")
            return cls(created_at=created, id=uuid.UUID(data["i"]))
        except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError):
            raise ValidationFailed("invalid cursor") from None


class _Keyed(Protocol):
    @property
    def created_at(self) -> datetime: ...
    @property
    def id(self) -> uuid.UUID: ...


K = TypeVar("K", bound=_Keyed)


def split_page(items: list[K], limit: int) -> tuple[list[K], Cursor | None]:
    """Rows fetched with `LIMIT limit + 1` -> this page, and the cursor of the next (or None)."""
    page = items[:limit]
    return page, Cursor(page[-1].created_at, page[-1].id) if len(items) > limit else None


def check_limit(limit: int) -> int:
    """Validate a page size (1..100)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}")
    return limit
