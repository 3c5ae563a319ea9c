"""Training and evaluation data from processed videos: Parquet written with Ray Data.

    clipforge dataset export --out DIR

One row per clip the detect stage chose and per scored window of the video's score timeline,
with the words spoken in its span, so an ML engineer can train or tune a scorer (notebook 02)
from what production scored. The driver reads the ids of ready videos with clips in keyset
pages; Ray tasks read each batch's videos, clips and transcripts (one query per table) and build
Arrow tables of `SCHEMA`; `write_parquet` writes them. On a multi-node cluster DIR must be a
filesystem every node sees (or an `s3://` URI, through pyarrow's filesystems).

Columns: `video_id`, `kind` (`clip` or `window`), `start_s`, `end_s`, `text`, `speaker` (the
speaker of most of the span's words; null without speaker turns), `sub_scores` (named
sub-scores; clips only, the timeline keeps one score per window), `score`, `chosen` (a clip, or
a window that lies mostly inside one), `edited` (a clip a person edited or made, or a window that
lies mostly inside one: what people kept is a label the scorer did not write), `rank` (clips),
`title` (clips), `scorer_version` (the scorer config's version) and `model_version` (scorer,
encoder and config hash).
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy.typing as npt
import psycopg
import pyarrow as pa
from psycopg.rows import dict_row

from clipforge.db.pool import Pool
from clipforge.db.repo.clips import StoredClip
from clipforge.db.repo.dataset import clips_of_videos, videos_with_clips_page
from clipforge.db.repo.transcripts import get_transcripts
from clipforge.db.repo.videos import get_videos
from clipforge.types import Transcript, Word

SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("kind", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("text", pa.string()),
        ("speaker", pa.int32()),
        ("sub_scores", pa.map_(pa.string(), pa.float64())),
        ("score", pa.float64()),
        ("chosen", pa.bool_()),
        ("edited", pa.bool_()),
        ("rank", pa.int32()),
        ("title", pa.string()),
        ("scorer_version", pa.string()),
        ("model_version", pa.string()),
    ]
)


def _span(words: Sequence[Word], start: float, end: float) -> tuple[str, int | None]:
    """The words whose middle lies in [start, end): their text and their main speaker."""
    inside = [w for w in words if start <= (w.start + w.end) / 2 < end]
    speakers = Counter(w.speaker for w in inside if w.speaker is not None)
    return " ".join(w.text for w in inside), speakers.most_common(1)[0][0] if speakers else None


def _mostly_inside(start: float, end: float, clips: Sequence[StoredClip]) -> bool:
    """At least half of the window lies inside one of `clips`."""
    length = max(end - start, 1e-9)
    return any(min(end, c.end_s) - max(start, c.start_s) >= length / 2 for c in clips)


def video_rows(
    video_id: uuid.UUID,
    timeline: Sequence[Sequence[float]],
    clips: Sequence[StoredClip],
    transcript: Transcript | None,
) -> list[dict[str, Any]]:
    """The rows of one video: its clips by rank, then its scored windows in time order."""
    words = transcript.words if transcript else ()
    version = clips[0].model_version if clips else ""
    rows = []
    for clip in clips:
        text, speaker = _span(words, clip.start_s, clip.end_s)
        rows.append(
            {
                "kind": "clip",
                "start_s": clip.start_s,
                "end_s": clip.end_s,
                "text": text,
                "speaker": speaker,
                "sub_scores": list(clip.sub_scores.items()),
                "score": clip.score,
                "chosen": True,
                "edited": clip.edited,
                "rank": clip.rank,
                "title": clip.title,
                "model_version": clip.model_version,
            }
        )
    for start, end, score in timeline:
        text, speaker = _span(words, start, end)
        rows.append(
            {
                "kind": "window",
                "start_s": float(start),
                "end_s": float(end),
                "text": text,
                "speaker": speaker,
                "sub_scores": [],
                "score": float(score),
                "chosen": _mostly_inside(start, end, clips),
                "edited": _mostly_inside(start, end, [c for c in clips if c.edited]),
                "rank": None,
                "title": None,
                "model_version": version,
            }
        )
    for row in rows:
        row["video_id"] = str(video_id)
        row["scorer_version"] = str(row["model_version"]).split("+")[0]
    return rows


def export_rows(batch: dict[str, npt.NDArray[Any]], *, database_url: str) -> pa.Table:
    """Ray Data map: a batch of video ids -> an Arrow table of `SCHEMA` (reads only)."""
    ids = [uuid.UUID(str(v)) for v in batch["video_id"]]
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        videos = get_videos(conn, video_ids=ids)
        clips = clips_of_videos(conn, video_ids=ids)
        transcripts = get_transcripts(conn, video_ids=ids)
    rows: list[dict[str, Any]] = []
    for video_id in ids:
        if (video := videos.get(video_id)) is not None:
            timeline = video.metadata.get("highlight_timeline") or []
            rows += video_rows(
                video_id, timeline, clips.get(video_id, []), transcripts.get(video_id)
            )
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _video_ids(pool: Pool, since: datetime | None, page_size: int) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        with pool.connection() as conn:
            page = videos_with_clips_page(conn, after=after, limit=page_size, since=since)
        if not page:
            return ids
        ids += [video_id for _, video_id in page]
        after = page[-1]


def export_dataset(
    pool: Pool,
    out: str | Path,
    *,
    database_url: str,
    since: datetime | None = None,
    videos_per_batch: int = 32,
) -> int:
    """Write the Parquet files of every ready video with clips under `out`; the video count."""
    import ray.data

    from pipelines.engine.worker import ensure_ray

    ids = _video_ids(pool, since, page_size=1000)
    if not ids:
        return 0
    ensure_ray()
    ds: ray.data.Dataset = ray.data.from_items(
        [{"video_id": str(v)} for v in ids],
        override_num_blocks=max(1, math.ceil(len(ids) / videos_per_batch)),
    )
    ds = ds.map_batches(
        partial(export_rows, database_url=database_url),
        batch_size=videos_per_batch,
        num_cpus=0.25,  # Postgres reads and Arrow building: mostly waiting
    )
    ds.write_parquet(str(out))
    return len(ids)


def read_back(out: str | Path) -> pa.Table:
    """The exported rows as one table (tests and notebooks)."""
    import pyarrow.parquet as pq

    return pq.read_table(str(out), schema=SCHEMA)
