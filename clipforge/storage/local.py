"""Local-folder backend for the embedded default (`clipforge process`): no server needed."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from clipforge.errors import NotFound, ValidationFailed
from clipforge.storage.base import ObjectInfo, ObjectPage, check_key


class LocalStore:
    """`ObjectStore` over a folder; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path, *, cdn_base_url: str | None = None) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._cdn = cdn_base_url

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if self.root not in path.parents:
            raise ValidationFailed(f"invalid object key {key!r}")
        return path

    def _info(self, key: str, path: Path) -> ObjectInfo:
        stat = path.stat()
        # Cheap etag (size + mtime); content hashing whole videos would cost seconds per call.
        tag = hashlib.md5(f"{stat.st_size}:{stat.st_mtime_ns}".encode(), usedforsecurity=False)
        modified = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
        return ObjectInfo(key=key, size=stat.st_size, etag=tag.hexdigest(), modified=modified)

    def _write(self, key: str, fill: object) -> ObjectInfo:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(fill, bytes):
                    out.write(fill)
                else:
                    assert isinstance(fill, Path)
                    with fill.open("rb") as src:
                        shutil.copyfileobj(src, out, 1024 * 1024)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self._info(key, path)

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> ObjectInfo:
        """Copy a file into the store."""
        return self._write(key, path)

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo:
        """Store bytes."""
        return self._write(key, data)

    def get_bytes(self, key: str) -> bytes:
        """Read an object."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"object {key} not found") from None

    def download_file(self, key: str, path: Path) -> Path:
        """Copy an object out of the store."""
        src = self._path(key)
        if not src.is_file():
            raise NotFound(f"object {key} not found")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, path)
        return path

    def head(self, key: str) -> ObjectInfo | None:
        """Metadata, or None."""
        path = self._path(key)
        return self._info(key, path) if path.is_file() else None

    def delete(self, key: str) -> None:
        """Remove an object if present."""
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        """Remove all objects under `prefix`."""
        count = 0
        for info in self._all(prefix):
            self.delete(info.key)
            count += 1
        return count

    def _all(self, prefix: str) -> list[ObjectInfo]:
        found = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(self._info(key, path))
        return sorted(found, key=lambda i: i.key)

    def list_page(self, prefix: str, *, limit: int = 1000, token: str | None = None) -> ObjectPage:
        """Objects under `prefix` after key `token`, in key order."""
        items = [i for i in self._all(prefix) if token is None or i.key > token]
        page = items[:limit]
        more = len(items) > limit
        return ObjectPage(items=page, next_token=page[-1].key if more and page else None)

    def path_of(self, key: str) -> Path | None:
        """The file holding the object, or None: for serving it from this machine (Range
        requests included) without reading it into memory."""
        path = self._path(key)
        return path if path.is_file() else None

    def presign_put(self, key: str, *, expires_s: int, content_type: str | None = None) -> str:
        """Not available: the local backend has no HTTP endpoint for clients to upload to."""
        raise ValidationFailed("presigned uploads need the S3 backend (set S3_BUCKET)")

    def presign_get(self, key: str, *, expires_s: int) -> str:
        """A file:// URL (local use only; there is nothing to sign)."""
        return self._path(key).as_uri()

    def file_of(self, key: str) -> Path:
        """The file holding an object (the API serves it through signed `/media/` URLs)."""
        return self._path(key)

    def public_url(self, key: str) -> str:
        """CDN URL when configured, else a file:// URL."""
        if self._cdn:
            return f"{self._cdn}/{check_key(key)}"
        return self.presign_get(key, expires_s=0)
