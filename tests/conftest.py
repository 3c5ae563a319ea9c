"""Test harness: real Postgres, Redis and S3-compatible servers.

Uses DATABASE_URL / REDIS_URL / S3_ENDPOINT_URL when set (CI points them at the machine's
servers); otherwise starts real local ones (embedded Postgres from `pgserver`, a private
`redis-server`, `nanio`). Each test session works in its own database; each test starts from
empty tables.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
from psycopg import sql

from clipforge.db.migrate import migrate
from clipforge.db.pool import Pool, create_pool
from clipforge.settings import Settings, load_settings
from tests.utils.ray_env import RAY_QUIET_ENV
from tests.utils.servers import nanio_server, redis_server

# The product's ASR default is Whisper base (word starts on time, docs/speech-evaluation.md); the
# tests that are not about recognition accuracy or word timing run tiny.en instead, at half the
# CPU, to keep CI's time. Set here, before any settings are read, so every Settings, subprocess
# (`clipforge ...`) and Ray worker the tests start inherits it. The tests about accuracy and
# timing name base themselves (tests/models/test_speakers_real.py, test_asr.py).
os.environ.setdefault("ASR_MODEL", "tiny.en")

# Ray's own telemetry and warm-up off for every Ray of the session (tests/utils/ray_env.py): set
# before anything starts, so the session Rays, subprocesses, `ray start` clusters and notebook
# kernels all inherit it.
for _name, _value in RAY_QUIET_ENV.items():
    os.environ.setdefault(_name, _value)

# Files whose tests take minutes (Ray actors, whole pipeline runs, clusters, notebooks), heaviest
# first, from `pytest --durations` on the 2-core machine. They are collected first so that the
# three pytest-xdist workers (.ci/run, `-n 3 --dist loadfile --no-loadscope-reorder`; xdist would
# otherwise hand out files by their number of tests) start on them and end on the short files
# together, instead of one worker finishing a long file alone at the end.
_HEAVY_FILES = (
    "tests/notebooks/test_notebooks.py",
    "tests/pipelines/test_process_terminal.py",
    "tests/pipelines/test_process_terminal_long.py",
    "tests/serve_apps/test_readme_quickstart.py",
    "tests/pipelines/test_two_node_cluster.py",
    "tests/pipelines/test_two_node_data_backfill.py",
    "tests/pipelines/test_worker.py",
    "tests/pipelines/test_embedded_signals.py",
    "tests/pipelines/test_disk_full_worker.py",
    "tests/pipelines/test_engine.py",
    "tests/serve_apps/test_serve_app.py",
    "tests/serve_apps/test_serve_cli.py",
    "tests/serve_apps/test_serve_scaling.py",
    "tests/pipelines/test_backfill_data.py",
    "tests/pipelines/test_process.py",
    "tests/pipelines/test_backfill_runs.py",
    "tests/pipelines/test_restore_drill.py",
    "tests/models/test_highlight_real_speech.py",
    "tests/serve_apps/test_api_clip_edits_render.py",
    "tests/serve_apps/test_studio_browser.py",
    "tests/pipelines/test_backfill.py",
    "tests/pipelines/test_end_to_end.py",
    "tests/pipelines/test_observability.py",
    "tests/models/test_asr.py",
    "tests/models/test_speakers_real.py",
    "tests/models/test_highlight_content.py",
    "tests/pipelines/test_clean_ends.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heavy files first (in the order above), the rest in collection order."""
    rank = {name: i for i, name in enumerate(_HEAVY_FILES)}
    root = Path(__file__).resolve().parents[1]

    def key(item: pytest.Item) -> int:
        rel = item.path.resolve().relative_to(root).as_posix()
        return rank.get(rel, len(rank))

    items.sort(key=key)  # stable: the order inside a file is kept


_S3_KEY = "clipforge-test"
_S3_SECRET = "clipforge-test-secret"


def _admin_url(tmp_root: Path) -> str:
    if url := os.environ.get("DATABASE_URL"):
        return url
    import pgserver

    server = pgserver.get_server(tmp_root / "pgdata", cleanup_mode="stop")
    return str(server.get_uri())


def _with_database(url: str, dbname: str) -> str:
    return str(psycopg.conninfo.make_conninfo(url, dbname=dbname))


@contextlib.contextmanager
def temporary_database(admin_url: str) -> Iterator[str]:
    """An empty database that is dropped afterwards; yields its URL."""
    name = f"cf_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def admin_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of the server's maintenance database (DATABASE_URL or an embedded server)."""
    return _admin_url(tmp_path_factory.mktemp("pg"))


@pytest.fixture(scope="session")
def database_url(admin_database_url: str) -> Iterator[str]:
    """A migrated database private to this test session."""
    with temporary_database(admin_database_url) as url:
        migrate(url)
        yield url


@pytest.fixture()
def fresh_database_url(admin_database_url: str) -> Iterator[str]:
    """An empty, unmigrated database for one test."""
    with temporary_database(admin_database_url) as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at the session database (other values from the environment)."""
    return load_settings(
        database_url=database_url,
        environment="test",
        data_dir=tmp_path_factory.mktemp("clipforge-data"),
        queue_lease_s=30,
        queue_heartbeat_s=5,
    )


@pytest.fixture(scope="session")
def pool(settings: Settings, database_url: str) -> Iterator[Pool]:
    """A connection pool on the session database."""
    with create_pool(settings, database_url, application_name="clipforge-tests", max_size=20) as p:
        yield p


@pytest.fixture()
def db(pool: Pool) -> Pool:
    """The pool, with every table emptied first."""
    with pool.connection() as conn:
        tables = [
            r["tablename"]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'schema_migrations'"
            ).fetchall()
        ]
        if tables:
            conn.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                    sql.SQL(", ").join(sql.Identifier(t) for t in tables)
                )
            )
    return pool


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL, or a private redis-server for the session."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    with redis_server() as (url, _proc):
        yield url


@pytest.fixture()
def redis_prefix() -> str:
    """A key prefix private to one test, so tests never see each other's keys."""
    return f"cftest:{uuid.uuid4().hex[:10]}:"


@pytest.fixture(scope="session")
def s3_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings for a real S3-compatible server: S3_ENDPOINT_URL if set, else `nanio`."""
    bucket = f"cf-test-{uuid.uuid4().hex[:8]}"
    if endpoint := os.environ.get("S3_ENDPOINT_URL"):
        yield load_settings(s3_endpoint_url=endpoint, s3_bucket=bucket, environment="test")
        return
    with nanio_server(
        tmp_path_factory.mktemp("s3"), access_key=_S3_KEY, secret_key=_S3_SECRET
    ) as url:
        yield load_settings(
            s3_endpoint_url=url,
            s3_bucket=bucket,
            s3_access_key_id=_S3_KEY,
            s3_secret_access_key=_S3_SECRET,
            environment="test",
        )


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One local Ray for the whole session (2 CPUs, small object store, no dashboard)."""
    import ray

    from serve_apps.deployments.launch import PROXY_READY_ENV

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # The Serve tests deploy on this Ray: their proxies get longer to start than Serve's 5 s.
    for name, value in PROXY_READY_ENV.items():
        os.environ.setdefault(name, value)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=256 * 1024 * 1024,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


_MEDIA_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_test_media.py"


@pytest.fixture(scope="session")
def media_script() -> ModuleType:
    """scripts/make_test_media.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_test_media", _MEDIA_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def test_media(media_script: ModuleType) -> dict[str, Path]:
    """Name -> path of every test medium (built once per machine under .cache/test-media)."""
    # Under pytest-xdist every worker asks at once: one builds, the others wait and reuse.
    lock_path = Path(media_script.default_out_dir()) / ".build.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built: dict[str, Path] = media_script.build_all()
    return built
