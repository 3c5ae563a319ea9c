"""LISTEN/NOTIFY wake-up for idle workers.

Workers poll with a long interval and sleep on a dedicated connection in between; `enqueue`
sends a NOTIFY on commit, so new work starts within milliseconds without hammering the
database with short polls.

The listening connection is the first thing a database restart breaks, so it reconnects by
itself: a lost or refused connection makes `wait` sleep out its timeout (the poll interval
still bounds how late a job starts) and try again on the next call. Only a configuration that
can never connect (bad credentials, missing database) raises.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg

from clipforge.db.repo.jobs import NOTIFY_CHANNEL
from clipforge.errors import ConfigError
from clipforge.resilience import is_fatal_db_error

log = logging.getLogger(__name__)
_CONNECT_TIMEOUT_S = 5


class JobNotifier:
    """A dedicated autocommit connection listening on the job channel, reconnected on loss."""

    def __init__(self, database_url: str, *, stop: threading.Event | None = None) -> None:
        self._url = database_url
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        # Set by the owner on shutdown, so a sleep in `wait` ends at once.
        self._stop = stop or threading.Event()
        self._down_since: float | None = None
        self._connect()

    @property
    def connected(self) -> bool:
        """Whether the listening connection is up right now."""
        return self._conn is not None and not self._conn.closed

    def _connect(self) -> bool:
        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                application_name="clipforge-listen",
                connect_timeout=_CONNECT_TIMEOUT_S,
            )
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except psycopg.Error as exc:
            if is_fatal_db_error(exc):
                raise ConfigError(f"cannot listen for jobs: {exc}") from exc
            self._lost(exc)
            return False
        self._conn = conn
        if self._down_since is not None:
            log.info(
                "job listener reconnected",
                extra={"down_s": round(time.monotonic() - self._down_since, 1)},
            )
            self._down_since = None
        return True

    def _lost(self, exc: BaseException) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("job listener lost its connection", extra={"error": repr(exc)})

    def wait(self, timeout_s: float) -> bool:
        """Block until a job notification arrives or `timeout_s` passes; True if notified.

        Never raises for a database outage: it sleeps out the timeout instead, and reconnects
        on a later call. A notification sent while disconnected is lost, which is harmless: the
        caller polls after every wait anyway.
        """
        if not self.connected and not self._connect():
            self._stop.wait(timeout_s)
            return False
        assert self._conn is not None
        try:
            # Consume the generator fully (list): one left suspended holds the connection lock.
            return bool(list(self._conn.notifies(timeout=timeout_s, stop_after=1)))
        except psycopg.Error as exc:
            self._lost(exc)
            return False

    def close(self) -> None:
        """Close the listening connection."""
        self._stop.set()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
