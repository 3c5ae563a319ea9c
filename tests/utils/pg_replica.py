"""A Postgres primary and a streaming replica made from it with `pg_basebackup -R`.

Both are `PostgresServer`s (the `pgserver` wheel's binaries, unprivileged user when root) on
free loopback ports. The primary runs with the defaults that allow streaming replication
(`wal_level=replica`, `max_wal_senders=10`, and initdb's `host replication ... trust` line);
the replica is a base backup of it whose `-R` wrote `standby.signal` and a `primary_conninfo`,
so it starts as a hot standby streaming from the primary. Tests may stop and start either,
and pause or resume replay on the replica.
"""

from __future__ import annotations

import psycopg

from clipforge.db.replicas import PRIMARY_POSITION_SQL
from tests.utils.servers import PostgresServer
from tests.utils.wait import wait_until


def replay_lsn(url: str) -> int:
    """The replica's last replayed WAL position, in bytes."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint"
        ).fetchone()
    assert row is not None and row[0] is not None, "not a replica"
    return int(row[0])


def current_lsn(url: str) -> int:
    """The primary's current WAL position, in bytes (as the read router measures it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(PRIMARY_POSITION_SQL).fetchone()
    assert row is not None
    return int(row[0])


class ReplicaPair:
    """A started primary and a started streaming replica of it (`close` removes both)."""

    def __init__(self) -> None:
        self.primary = PostgresServer()
        self.replica: PostgresServer | None = None
        try:
            self.primary.start()
            self.replica = PostgresServer(initdb=False)
            # -X stream: the WAL written during the copy comes along; -R: standby.signal plus
            # primary_conninfo, so the copy starts as a streaming hot standby of the primary.
            self.replica._run(
                "pg_basebackup",
                "-D",
                str(self.replica.pgdata),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.primary.port),
                "-U",
                "postgres",
                "-X",
                "stream",
                "-R",
                "-c",
                "fast",
                "--no-sync",  # a throwaway copy, like the servers' fsync=off
            )
            self.replica.start()
            self.wait_caught_up()
        except BaseException:
            self.close()
            raise

    @property
    def primary_url(self) -> str:
        """DSN of the primary's `postgres` database."""
        return self.primary.url

    @property
    def replica_url(self) -> str:
        """DSN of the replica's `postgres` database (read-only)."""
        assert self.replica is not None
        return self.replica.url

    def wait_caught_up(self, timeout_s: float = 20.0) -> None:
        """Block until the replica has replayed everything the primary has written so far."""
        target = current_lsn(self.primary_url)
        wait_until(
            lambda: replay_lsn(self.replica_url) >= target,
            timeout_s=timeout_s,
            interval_s=0.02,
            what="the replica to catch up with the primary",
        )

    def pause_replay(self) -> None:
        """Stop applying WAL on the replica (it keeps receiving it): its data stands still."""
        with psycopg.connect(self.replica_url, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        """Apply WAL again."""
        with psycopg.connect(self.replica_url, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")

    def close(self) -> None:
        """Stop both servers and delete their data."""
        if self.replica is not None:
            self.replica.close()
        self.primary.close()
