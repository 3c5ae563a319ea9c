"""A throwaway migrated database for benchmarks (DATABASE_URL's server, or embedded)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from clipforge.db.migrate import migrate


@contextlib.contextmanager
def scratch_database(admin_url: str | None = None) -> Iterator[str]:
    """Create, migrate and finally drop a database (on `admin_url`'s server if given)."""
    with contextlib.ExitStack() as stack:
        admin = admin_url or os.environ.get("DATABASE_URL")
        if not admin:
            import pgserver

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            server = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")  # type: ignore[attr-defined]
            admin = str(server.get_uri())
        name = f"cf_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            url = psycopg.conninfo.make_conninfo(admin, dbname=name)
            migrate(url)
            yield url
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
