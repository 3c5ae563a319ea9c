"""Signed, expiring, tenant-scoped download URLs for media the API serves itself.

With S3 a client downloads through a presigned URL (or the CDN). The local-folder backend has no
HTTP endpoint of its own, so the API serves those objects at `/media/<key>`, behind the same kind
of URL: an HMAC-SHA256, under a server secret, over the method, the object key, the API key the
URL was given to (`tenant`) and an expiry time. Anyone holding the URL can download until it
expires, as with S3; a changed key, tenant or expiry breaks the signature, and the server also
checks at download time that the tenant still owns the video and is not revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

from clipforge.settings import Settings
from clipforge.storage.base import check_key

MEDIA_PATH = "/media/"
SECRET_FILE = "media-url.secret"
# Expiry times are rounded up to this step, so repeated polls of an export within it get the
# same URL (HTTP caches and players keep working), at most this much past the lifetime.
_EXPIRY_STEP_S = 60


def media_url_secret(settings: Settings) -> bytes:
    """MEDIA_URL_SECRET, else a random secret kept in `DATA_DIR/media-url.secret`.

    The file is created once (atomically: the first process to link it wins) and read by every
    later process on this machine, so API workers and restarts agree on signatures. Several API
    hosts sharing one storage folder need MEDIA_URL_SECRET set to the same value on each.
    """
    if settings.media_url_secret is not None:
        return settings.media_url_secret.get_secret_value().encode()
    path = settings.data_dir / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
        os.link(tmp, path)  # fails if another process got there first: theirs is used
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    value = path.read_bytes().strip()
    if len(value) < 32:
        raise ValueError(f"{path} holds no usable secret; delete it to make a new one")
    return value


def _digest(secret: bytes, *, key: str, tenant: uuid.UUID, expires: int) -> str:
    message = f"GET\n{key}\n{tenant}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class MediaSigner:
    """Signs and checks `/media/` URLs.

    Attributes:
        secret: the HMAC key (`media_url_secret`).
        lifetime_s: how long a URL stays valid (S3_PRESIGN_EXPIRY_S, as S3's presigned URLs).
    """

    secret: bytes
    lifetime_s: int

    def url(self, base_url: str, key: str, *, tenant: uuid.UUID, now: float | None = None) -> str:
        """An absolute download URL for `key` under `base_url` (e.g. `http://host:8080`)."""
        check_key(key)
        start = time.time() if now is None else now
        expires = math.ceil((start + self.lifetime_s) / _EXPIRY_STEP_S) * _EXPIRY_STEP_S
        query = urlencode(
            {
                "tenant": str(tenant),
                "expires": str(expires),
                "signature": _digest(self.secret, key=key, tenant=tenant, expires=expires),
            }
        )
        return f"{base_url.rstrip('/')}{MEDIA_PATH}{quote(key)}?{query}"

    def check(
        self, key: str, *, tenant: str, expires: str, signature: str, now: float | None = None
    ) -> uuid.UUID | None:
        """The tenant of a valid, unexpired URL for `key`; None for any other URL."""
        try:
            tenant_id = uuid.UUID(tenant)
            expires_at = int(expires)
        except ValueError:
            return None
        expected = _digest(self.secret, key=key, tenant=tenant_id, expires=expires_at)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return None
        return tenant_id if expires_at > (time.time() if now is None else now) else None
