"""LISTEN/NOTIFY wake-up for idle workers.

Workers poll with a long interval and sleep on a dedicated connection in between; `enqueue`
sends a NOTIFY on commit, so new work starts within milliseconds without hammering the
database with short polls.
"""

from __future__ import annotations

import psycopg

from clipforge.queue.jobs import NOTIFY_CHANNEL


class JobNotifier:
    """A dedicated autocommit connection listening on the job channel."""

    def __init__(self, database_url: str) -> None:
        self._conn = psycopg.connect(
            database_url, autocommit=True, application_name="clipforge-listen"
        )
        self._conn.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def wait(self, timeout_s: float) -> bool:
        """Block until a job notification arrives or `timeout_s` passes; True if notified."""
        # Consume the generator fully (list): a generator left suspended holds the connection lock.
        return bool(list(self._conn.notifies(timeout=timeout_s, stop_after=1)))

    def close(self) -> None:
        """Close the listening connection."""
        self._conn.close()
