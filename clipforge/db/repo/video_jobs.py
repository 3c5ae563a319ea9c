"""The jobs of one video, summed by stage and state: what `clipforge process` shows as progress
and waits on."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

from clipforge.db.pool import Conn

_UNFINISHED = ("queued", "running")


@dataclass(frozen=True, slots=True)
class StageCounts:
    """Job counts of one stage (job kind) of a video.

    Attributes:
        states: number of jobs per state (queued, running, succeeded, failed, dead).
        last_error: an error recorded on a job of this stage (the newest of its state), if any.
    """

    states: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None

    @property
    def total(self) -> int:
        """All jobs of the stage."""
        return sum(self.states.values())

    @property
    def finished(self) -> int:
        """Jobs that will not run again (succeeded, failed or dead)."""
        return self.total - sum(self.states[s] for s in _UNFINISHED)


def video_job_counts(conn: Conn, *, video_id: uuid.UUID) -> dict[str, StageCounts]:
    """Per job kind: counts by state and the newest error, in one query (jobs_video_idx)."""
    rows = conn.execute(
        """
        SELECT kind, state, count(*) AS n,
               (array_agg(last_error ORDER BY updated_at DESC)
                   FILTER (WHERE last_error IS NOT NULL))[1] AS last_error
        FROM jobs WHERE video_id = %s GROUP BY kind, state
        """,
        (video_id,),
    ).fetchall()
    states: dict[str, Counter[str]] = {}
    errors: dict[str, str] = {}
    for row in rows:
        states.setdefault(row["kind"], Counter())[row["state"]] += row["n"]
        if row["last_error"]:
            errors.setdefault(row["kind"], row["last_error"])
    return {kind: StageCounts(counts, errors.get(kind)) for kind, counts in states.items()}


def video_has_unfinished_jobs(conn: Conn, *, video_id: uuid.UUID) -> bool:
    """Whether any job of the video is queued (maybe waiting out a retry backoff) or running."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE video_id = %s AND state = ANY(%s)) AS busy",
        (video_id, list(_UNFINISHED)),
    ).fetchone()
    return bool(row and row["busy"])
