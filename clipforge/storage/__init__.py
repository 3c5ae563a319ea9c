"""Object storage: one interface, an S3 backend and a local-folder backend."""

from clipforge.settings import Settings
from clipforge.storage.base import ObjectInfo, ObjectPage, ObjectStore, check_key
from clipforge.storage.local import LocalStore
from clipforge.storage.s3 import S3Store


def create_store(settings: Settings) -> ObjectStore:
    """The backend the settings select: S3 when S3_BUCKET is set, else a local folder."""
    if settings.storage_backend == "s3":
        return S3Store(settings)
    return LocalStore(settings.storage_dir, cdn_base_url=settings.cdn_base_url)


__all__ = [
    "LocalStore",
    "ObjectInfo",
    "ObjectPage",
    "ObjectStore",
    "S3Store",
    "check_key",
    "create_store",
]
