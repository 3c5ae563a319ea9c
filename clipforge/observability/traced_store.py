"""An `ObjectStore` that puts a span around each transfer (the stage actors' storage hops).

A wrapper rather than spans inside each backend: the stage actors hold one store each, so
wrapping it there covers every get and put of every stage, whichever backend the settings
chose. While tracing is off each call costs one extra function call.
"""

from __future__ import annotations

from pathlib import Path

from clipforge.observability.tracing import SpanKind, span
from clipforge.storage import ObjectInfo, ObjectPage, ObjectStore


class TracedStore:
    """Delegates to `inner`; transfers and deletes get a `storage.<operation>` client span."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> ObjectInfo:
        """See `ObjectStore.put_file`."""
        with span("storage.put", {"storage.key": key}, kind=SpanKind.CLIENT) as current:
            info = self.inner.put_file(key, path, content_type=content_type)
            if current is not None:
                current.set_attribute("storage.bytes", info.size)
            return info

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo:
        """See `ObjectStore.put_bytes`."""
        attributes = {"storage.key": key, "storage.bytes": len(data)}
        with span("storage.put", attributes, kind=SpanKind.CLIENT):
            return self.inner.put_bytes(key, data, content_type=content_type)

    def get_bytes(self, key: str) -> bytes:
        """See `ObjectStore.get_bytes`."""
        with span("storage.get", {"storage.key": key}, kind=SpanKind.CLIENT):
            return self.inner.get_bytes(key)

    def download_file(self, key: str, path: Path) -> Path:
        """See `ObjectStore.download_file`."""
        with span("storage.get", {"storage.key": key}, kind=SpanKind.CLIENT):
            return self.inner.download_file(key, path)

    def head(self, key: str) -> ObjectInfo | None:
        """See `ObjectStore.head`."""
        return self.inner.head(key)

    def delete(self, key: str) -> None:
        """See `ObjectStore.delete`."""
        with span("storage.delete", {"storage.key": key}, kind=SpanKind.CLIENT):
            self.inner.delete(key)

    def delete_prefix(self, prefix: str) -> int:
        """See `ObjectStore.delete_prefix`."""
        with span("storage.delete", {"storage.prefix": prefix}, kind=SpanKind.CLIENT):
            return self.inner.delete_prefix(prefix)

    def list_page(self, prefix: str, *, limit: int = 1000, token: str | None = None) -> ObjectPage:
        """See `ObjectStore.list_page`."""
        return self.inner.list_page(prefix, limit=limit, token=token)

    def presign_put(self, key: str, *, expires_s: int, content_type: str | None = None) -> str:
        """See `ObjectStore.presign_put`."""
        return self.inner.presign_put(key, expires_s=expires_s, content_type=content_type)

    def presign_get(self, key: str, *, expires_s: int) -> str:
        """See `ObjectStore.presign_get`."""
        return self.inner.presign_get(key, expires_s=expires_s)

    def public_url(self, key: str) -> str:
        """See `ObjectStore.public_url`."""
        return self.inner.public_url(key)
