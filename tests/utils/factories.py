"""Row factories for tests."""

from __future__ import annotations

from clipforge.db.pool import Pool
from clipforge.db.repo.api_keys import ApiKey, create_api_key
from clipforge.db.repo.videos import Video, create_video
from clipforge.queue import Job, QueuePolicy, enqueue


def make_key(pool: Pool, name: str = "test") -> tuple[ApiKey, str]:
    """An API key and its raw secret."""
    with pool.connection() as conn:
        return create_api_key(conn, name=name)


def make_video(pool: Pool, key: ApiKey | None = None, **kwargs: object) -> Video:
    """A video row owned by `key`."""
    with pool.connection() as conn:
        return create_video(
            conn,
            owner_key_id=key.id if key else None,
            source_kind="url",
            source_url="https://example.com/v.mp4",
            **kwargs,  # type: ignore[arg-type]
        )


def enqueue_many(pool: Pool, n: int, *, kind: str = "test", max_attempts: int = 5) -> list[Job]:
    """Enqueue `n` jobs in one transaction."""
    with pool.connection() as conn, conn.transaction():
        return [
            enqueue(
                conn, QueuePolicy.defaults(), kind=kind, payload={"n": i}, max_attempts=max_attempts
            )
            for i in range(n)
        ]
