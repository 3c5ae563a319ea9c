"""API fixtures: the app from `create_app` on the real Postgres, Redis and S3-compatible server.

Most tests drive the app in-process through Starlette's TestClient (real HTTP semantics,
no network hop); `test_serve_app.py` runs the same app as the Serve ingress on the session's
Ray, and `test_cli.py` runs `clipforge api` as a process.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from clipforge.db.pool import Pool
from clipforge.db.repo.api_keys import ApiKey
from clipforge.settings import Settings
from clipforge.storage import S3Store
from serve_apps.api.app import create_app
from serve_apps.api.deps import ApiDeps
from tests.serve_apps.helpers import S3_FIELDS
from tests.utils.factories import make_key
from tests.utils.serve_process import ServeProcess


@pytest.fixture(scope="session")
def api_settings(settings: Settings, s3_settings: Settings, redis_url: str) -> Settings:
    """Test database, Redis, S3; small body limits so size tests stay cheap."""
    merged = settings.model_copy(
        update={name: getattr(s3_settings, name) for name in (*S3_FIELDS, "s3_secret_access_key")}
        | {
            "redis_url": redis_url,
            "api_max_body_bytes": 64 * 1024,
            "api_max_direct_upload_bytes": 4 * 1024 * 1024,
            "api_max_model_upload_bytes": 4 * 1024 * 1024,
            "rate_limit_per_minute": 600,
            "rate_limit_burst": 50,
            "max_source_bytes": 50 * 1024 * 1024,
            "log_json": True,
            # A checkout waits up to 10 s, not the shipped 1.5 s: beside the rest of the suite
            # (load ~15 on 2 cores) an upload once got a 503 database_unavailable with the
            # database up. test_api_outages.py puts the shipped wait back to time an outage.
            "api_db_pool_timeout_s": 10.0,
        }
    )
    store = S3Store(merged)
    store.ensure_bucket()
    return merged


@pytest.fixture(scope="session")
def api_deps(api_settings: Settings, database_url: str) -> Iterator[ApiDeps]:
    """Opened API resources with a Redis prefix private to this session."""
    deps = ApiDeps.open(
        api_settings, database_url=database_url, redis_prefix=f"cftest:{uuid.uuid4().hex[:8]}:"
    )
    yield deps
    deps.close()


@pytest.fixture(scope="session")
def client(api_deps: ApiDeps) -> Iterator[TestClient]:
    """The standalone app (no model backend) through an in-process HTTP client."""
    with TestClient(create_app(api_deps), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture()
def owner(db: Pool) -> tuple[ApiKey, dict[str, str]]:
    """A fresh API key and its Authorization header (tables emptied first)."""
    key, raw = make_key(db, "owner")
    return key, {"Authorization": f"Bearer {raw}"}


@pytest.fixture()
def other(db: Pool) -> tuple[ApiKey, dict[str, str]]:
    """A second key, to show isolation between keys."""
    key, raw = make_key(db, "other")
    return key, {"Authorization": f"Bearer {raw}"}


@pytest.fixture()
def serve_process() -> Iterator[list[ServeProcess]]:
    """`clipforge serve` processes a test started, cleaned up even when it fails."""
    started: list[ServeProcess] = []
    yield started
    for process in started:
        process.close()
