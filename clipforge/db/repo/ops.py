"""Queries of the operator tooling (`clipforge backup`, `restore`, `verify`) and of readiness.

They take any psycopg connection (the tools open their own, outside the pool) and read rows as
tuples, whatever the connection's row factory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row


def ping(conn: psycopg.Connection[Any]) -> None:
    """One round trip: raises if the server does not answer."""
    conn.execute("SELECT 1")


def public_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """Names of the tables of the `public` schema, sorted."""
    cur = conn.cursor(row_factory=tuple_row)
    rows = cur.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    ).fetchall()
    return [str(name) for (name,) in rows]


def row_count(conn: psycopg.Connection[Any], table: str) -> int:
    """Rows of one `public` table (the name is quoted as an identifier)."""
    query = sql.SQL("SELECT count(*) FROM public.{}").format(sql.Identifier(table))
    row = conn.cursor(row_factory=tuple_row).execute(query).fetchone()
    return int(row[0]) if row is not None else 0


def server_version(conn: psycopg.Connection[Any]) -> str:
    """The server's `server_version` setting, e.g. `16.4`."""
    row = (
        conn.cursor(row_factory=tuple_row)
        .execute("SELECT current_setting('server_version')")
        .fetchone()
    )
    return str(row[0]) if row is not None else ""


def export_snapshot(conn: psycopg.Connection[Any]) -> str:
    """Export the transaction's snapshot for `pg_dump --snapshot` (REPEATABLE READ needed)."""
    row = conn.cursor(row_factory=tuple_row).execute("SELECT pg_export_snapshot()").fetchone()
    assert row is not None
    return str(row[0])


def stored_originals(conn: psycopg.Connection[Any]) -> Iterator[tuple[Any, str]]:
    """(video id, original key) of every video with a stored original, by id."""
    cur = conn.cursor(row_factory=tuple_row)
    for video_id, key in cur.execute(
        "SELECT id, original_key FROM videos WHERE original_key IS NOT NULL ORDER BY id"
    ).fetchall():
        yield video_id, str(key)


def ready_export_objects(conn: psycopg.Connection[Any]) -> Iterator[tuple[Any, str, str | None]]:
    """(export id, video key, thumbnail key or None) of every ready export, by id."""
    cur = conn.cursor(row_factory=tuple_row)
    for export_id, video_key, thumb in cur.execute(
        "SELECT id, object_key, thumbnail_key FROM exports"
        " WHERE status = 'ready' AND object_key IS NOT NULL ORDER BY id"
    ).fetchall():
        yield export_id, str(video_key), str(thumb) if thumb else None
