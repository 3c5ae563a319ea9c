"""S3 backend (boto3): adaptive retries, multipart uploads, presigned URLs, CDN URLs.

boto3's "adaptive" retry mode retries throttling and 5xx with backoff and client-side rate
limiting; the circuit breaker on top makes a hard outage fail fast instead of every caller
waiting out its own retries. 4xx answers (missing key, bad request) never trip the breaker.
Outages (5xx, connection errors, an open breaker) surface as `DependencyUnavailable("s3")`, so
the queue delays the job instead of spending its attempts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from clipforge.errors import DependencyUnavailable, NotFound, TransientError
from clipforge.settings import Settings
from clipforge.storage.base import ObjectInfo, ObjectPage, check_key
from clipforge.storage.breaker import shared_breaker

T = TypeVar("T")
_MB = 1024 * 1024


def _is_outage(exc: Exception) -> bool:
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500))
        return status >= 500
    return isinstance(exc, BotoCoreError)


class S3Store:
    """`ObjectStore` on any S3-compatible service."""

    def __init__(self, settings: Settings, *, client: Any | None = None) -> None:
        if not settings.s3_bucket:
            raise ValueError("S3Store needs S3_BUCKET")
        self.bucket = settings.s3_bucket
        self._cdn = settings.cdn_base_url
        self._presign_default = settings.s3_presign_expiry_s
        secret = settings.s3_secret_access_key
        self._client = client or boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=Config(
                signature_version="s3v4",
                retries={"mode": "adaptive", "max_attempts": 5},
                connect_timeout=3,
                read_timeout=30,
                max_pool_connections=20,
                # Path-style works with every S3-compatible server behind a plain endpoint.
                s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
            ),
        )
        threshold = settings.s3_multipart_threshold_mb * _MB
        self._transfer = TransferConfig(
            multipart_threshold=threshold, multipart_chunksize=max(8 * _MB, threshold // 2)
        )
        # Shared by every client of this process and endpoint, so failures add up across rows.
        scope = f"{settings.s3_endpoint_url}/{self.bucket}"
        self._breaker = shared_breaker("s3", scope=scope, is_failure=_is_outage)

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return self._breaker.call(fn)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchKey", "NotFound"}:
                raise NotFound("object not found") from exc
            if _is_outage(exc):
                raise DependencyUnavailable(f"s3 error: {code}", dependency="s3") from exc
            raise
        except BotoCoreError as exc:
            raise DependencyUnavailable(f"s3 unavailable: {exc}", dependency="s3") from exc

    def probe(self) -> None:
        """One request to the bucket past the breaker (a health probe must reach the service
        itself, not its breaker's memory of it); raise `DependencyUnavailable` if S3 does not
        answer. An answer closes this process's breaker: S3 is back for everyone here."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _is_outage(exc):
                raise DependencyUnavailable("s3 probe failed", dependency="s3") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable(f"s3 unavailable: {exc}", dependency="s3") from exc
        self._breaker.reset()

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (local infra and tests)."""
        try:
            self._call(lambda: self._client.head_bucket(Bucket=self.bucket))
        except (NotFound, ClientError):
            self._call(lambda: self._client.create_bucket(Bucket=self.bucket))

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> ObjectInfo:
        """Upload a file; above the threshold boto3 sends it as a parallel multipart upload."""
        extra = {"ContentType": content_type} if content_type else None
        self._call(
            lambda: self._client.upload_file(
                str(path), self.bucket, check_key(key), ExtraArgs=extra, Config=self._transfer
            )
        )
        return self._require(key)

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo:
        """Store a small object in one request."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": check_key(key), "Body": data}
        if content_type:
            kwargs["ContentType"] = content_type
        resp = self._call(lambda: self._client.put_object(**kwargs))
        return ObjectInfo(key=key, size=len(data), etag=str(resp.get("ETag", "")).strip('"'))

    def get_bytes(self, key: str) -> bytes:
        """Read a whole object."""
        resp = self._call(lambda: self._client.get_object(Bucket=self.bucket, Key=check_key(key)))
        body: bytes = resp["Body"].read()
        return body

    def download_file(self, key: str, path: Path) -> Path:
        """Stream an object to `path` (multipart ranged GETs for large objects)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._call(
            lambda: self._client.download_file(
                self.bucket, check_key(key), str(path), Config=self._transfer
            )
        )
        return path

    def head(self, key: str) -> ObjectInfo | None:
        """Metadata, or None when the object does not exist."""
        try:
            resp = self._call(
                lambda: self._client.head_object(Bucket=self.bucket, Key=check_key(key))
            )
        except NotFound:
            return None
        return ObjectInfo(
            key=key,
            size=int(resp["ContentLength"]),
            etag=str(resp.get("ETag", "")).strip('"'),
            content_type=resp.get("ContentType"),
        )

    def _require(self, key: str) -> ObjectInfo:
        info = self.head(key)
        if info is None:
            raise TransientError(f"object {key} missing right after upload")
        return info

    def delete(self, key: str) -> None:
        """Delete one object; deleting a missing object is not an error in S3."""
        self._call(lambda: self._client.delete_object(Bucket=self.bucket, Key=check_key(key)))

    def delete_prefix(self, prefix: str) -> int:
        """Delete all objects under `prefix`, one listing page at a time."""
        deleted = 0
        token: str | None = None
        while True:
            page = self.list_page(prefix, limit=1000, token=token)
            for item in page.items:
                self.delete(item.key)
                deleted += 1
            if page.next_token is None:
                return deleted
            token = page.next_token

    def list_page(self, prefix: str, *, limit: int = 1000, token: str | None = None) -> ObjectPage:
        """One ListObjectsV2 page."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": limit}
        if token:
            kwargs["ContinuationToken"] = token
        resp = self._call(lambda: self._client.list_objects_v2(**kwargs))
        items = [
            ObjectInfo(
                key=o["Key"],
                size=int(o["Size"]),
                etag=str(o.get("ETag", "")).strip('"'),
                modified=o.get("LastModified"),
            )
            for o in resp.get("Contents", [])
        ]
        next_token = resp.get("NextContinuationToken") if resp.get("IsTruncated") else None
        return ObjectPage(items=items, next_token=next_token)

    def presign_put(self, key: str, *, expires_s: int, content_type: str | None = None) -> str:
        """Presigned PUT (the client uploads straight to S3; the API never proxies bytes)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": check_key(key)}
        if content_type:
            params["ContentType"] = content_type
        url: str = self._client.generate_presigned_url(
            "put_object", Params=params, ExpiresIn=expires_s, HttpMethod="PUT"
        )
        return url

    def presign_get(self, key: str, *, expires_s: int) -> str:
        """Presigned GET."""
        url: str = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": check_key(key)}, ExpiresIn=expires_s
        )
        return url

    def public_url(self, key: str) -> str:
        """CDN URL when `CDN_BASE_URL` is set, else a presigned GET with the default expiry."""
        if self._cdn:
            return f"{self._cdn}/{check_key(key)}"
        return self.presign_get(key, expires_s=self._presign_default)
