"""Helpers shared by the API tests."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from clipforge.db.pool import Pool
from clipforge.settings import Settings

S3_FIELDS = ("s3_endpoint_url", "s3_bucket", "s3_access_key_id", "s3_region")
TABLES = ("api_keys", "videos", "jobs", "clips", "exports", "webhooks", "idempotency_keys")


def settings_overrides(settings: Settings) -> dict[str, Any]:
    """`Settings` as plain overrides (for Serve replicas, which read their own environment)."""
    secret = settings.s3_secret_access_key
    fields = (
        "database_url",
        "redis_url",
        *S3_FIELDS,
        "environment",
        "api_max_body_bytes",
        "api_max_direct_upload_bytes",
        "api_max_model_upload_bytes",
        "rate_limit_per_minute",
        "rate_limit_burst",
        "max_source_bytes",
    )
    overrides = {name: getattr(settings, name) for name in fields}
    overrides["s3_secret_access_key"] = secret.get_secret_value() if secret else None
    overrides["data_dir"] = str(settings.data_dir)
    return overrides


def table_counts(pool: Pool) -> dict[str, int]:
    """Row count of every domain table (to show a request changed nothing it should not)."""
    counts: dict[str, int] = {}
    with pool.connection() as conn:
        for table in TABLES:
            query = sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))
            row = conn.execute(query).fetchone()
            assert row is not None
            counts[table] = int(row["n"])
    return counts
