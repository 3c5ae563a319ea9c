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
        done_s / total_s: seconds of media done and in all (jobs that report progress).
    """

    states: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    # Seconds of media done and in all, summed over the stage's jobs that report progress
    # (`set_job_progress`); None when none does.
    done_s: float | None = None
    total_s: float | None = None

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
                   FILTER (WHERE last_error IS NOT NULL))[1] AS last_error,
               sum((progress->>'done_s')::float8) AS done_s,
               sum((progress->>'total_s')::float8) AS total_s
        FROM jobs WHERE video_id = %s GROUP BY kind, state
        """,
        (video_id,),
    ).fetchall()
    states: dict[str, Counter[str]] = {}
    errors: dict[str, str] = {}
    seconds: dict[str, tuple[float | None, float | None]] = {}
    for row in rows:
        kind = row["kind"]
        states.setdefault(kind, Counter())[row["state"]] += row["n"]
        if row["last_error"]:
            errors.setdefault(kind, row["last_error"])
        if row["total_s"] is not None:
            # A succeeded job is done whatever it reported last.
            done = row["total_s"] if row["state"] == "succeeded" else row["done_s"] or 0.0
            old_done, old_total = seconds.get(kind, (0.0, 0.0))
            seconds[kind] = ((old_done or 0.0) + done, (old_total or 0.0) + row["total_s"])
    out: dict[str, StageCounts] = {}
    for kind, counts in states.items():
        done_s, total_s = seconds.get(kind, (None, None))
        out[kind] = StageCounts(counts, errors.get(kind), done_s, total_s)
    return out


def set_job_progress(conn: Conn, *, job_id: int, done_s: float, total_s: float) -> None:
    """Record how many seconds of media a running job has done (ignored once it has ended)."""
    conn.execute(
        """UPDATE jobs SET progress = jsonb_build_object('done_s', %s::float8, 'total_s', %s::float8)
           WHERE id = %s AND state = 'running'""",
        (done_s, total_s, job_id),
    )


def video_has_unfinished_jobs(conn: Conn, *, video_id: uuid.UUID) -> bool:
    """Whether any job of the video is queued (maybe waiting out a retry backoff) or running."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE video_id = %s AND state = ANY(%s)) AS busy",
        (video_id, list(_UNFINISHED)),
    ).fetchone()
    return bool(row and row["busy"])
