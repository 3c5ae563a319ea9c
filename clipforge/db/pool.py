"""Bounded psycopg 3 connection pools.

Every process opens one pool (at most 20 connections, per the scale rules), with a checkout
timeout so a saturated pool fails a request quickly instead of queueing it forever, and a
server-side statement timeout so one slow query cannot hold a connection indefinitely.

The API also opens a small asyncio pool (`create_async_pool`) for the queries it makes on the
event loop itself (API-key lookups); everything else, the queue worker included, uses the
synchronous pool.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from clipforge.settings import Settings

Pool = ConnectionPool[Connection[DictRow]]
Conn = Connection[DictRow]
AsyncPool = AsyncConnectionPool[AsyncConnection[DictRow]]
AsyncConn = AsyncConnection[DictRow]


def connect_kwargs(settings: Settings, *, application_name: str) -> dict[str, Any]:
    """Keyword arguments for `psycopg.connect` shared by pooled and dedicated connections."""
    return {
        "row_factory": dict_row,
        "application_name": application_name,
        "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        "connect_timeout": max(1, int(settings.db_pool_timeout_s)),
    }


def create_pool(
    settings: Settings,
    database_url: str,
    *,
    application_name: str = "clipforge",
    min_size: int | None = None,
    max_size: int | None = None,
    timeout_s: float | None = None,
    wait: bool = True,
) -> Pool:
    """Open a pool against `database_url` and wait until its minimum connections exist.

    `database_url` is passed separately from settings because the embedded default resolves it
    at run time (see `clipforge.db.embedded`). `timeout_s` overrides DB_POOL_TIMEOUT_S as the
    checkout wait (the API passes its shorter API_DB_POOL_TIMEOUT_S to fail fast in an outage).
    With `wait=False` the pool opens without waiting, so a server that is down does not stop
    the process (read replicas: `clipforge.db.replicas` skips them until they answer).
    """
    timeout = settings.db_pool_timeout_s if timeout_s is None else timeout_s
    pool: Pool = ConnectionPool(
        database_url,
        min_size=settings.db_pool_min_size if min_size is None else min_size,
        max_size=settings.db_pool_max_size if max_size is None else max_size,
        timeout=timeout,
        # psycopg_pool retries a lost connection with a doubling delay until this runs out, then
        # reconnects on demand. Its default (300 s) lets the delay grow to minutes, so a process
        # would keep failing long after the database came back; this bounds that lag to about
        # `reconnect_timeout / 2` (outages of any length are ridden out by the callers).
        reconnect_timeout=max(5.0, 2 * timeout),
        kwargs=connect_kwargs(settings, application_name=application_name),
        connection_class=Connection[DictRow],
        check=ConnectionPool.check_connection,
        name=application_name,
        open=False,
    )
    pool.open(wait=wait, timeout=settings.db_pool_timeout_s)
    return pool


async def create_async_pool(
    settings: Settings,
    database_url: str,
    *,
    application_name: str = "clipforge",
    max_size: int = 4,
    timeout_s: float | None = None,
) -> AsyncPool:
    """An asyncio pool with the same limits as `create_pool`; must be opened on its loop.

    It starts empty (`min_size=0`) and does not wait for a connection, so opening it never
    blocks or fails while the database is down: the first query then fails after `timeout_s`.
    Keep `max_size` small: it counts against the process's 20 connections with the sync pool.
    """
    timeout = settings.db_pool_timeout_s if timeout_s is None else timeout_s
    pool: AsyncPool = AsyncConnectionPool(
        database_url,
        min_size=0,
        max_size=max_size,
        timeout=timeout,
        reconnect_timeout=max(5.0, 2 * timeout),
        kwargs=connect_kwargs(settings, application_name=application_name),
        connection_class=AsyncConnection[DictRow],
        check=AsyncConnectionPool.check_connection,
        name=f"{application_name}-async",
        open=False,
    )
    await pool.open(wait=False)
    return pool
