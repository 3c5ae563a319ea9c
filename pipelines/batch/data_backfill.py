"""Detect backfills on Ray Data: a known set of videos re-scored as one streaming Dataset.

    ray job submit -- python -m pipelines.batch.backfill --stage detect --scorer-config tuned.yaml

A backfill is bounded batch work (the selection is known when it starts), which is what Ray
Data is for: streaming execution with backpressure, an actor pool that grows over every node
with room, and retried blocks. The queue worker keeps its long-lived actors: a Postgres queue
is an unbounded stream with leases and per-job commits, which a Dataset does not fit.

1. The driver reads the selection in keyset pages of ids (`pipelines.batch.backfill.select_page`:
   videos not at the target scorer yet), leaves out the videos this run already finished (a
   resumed `--force` run), and makes a Dataset of the ids.
2. `load_inputs` (Ray tasks, at most `backfill.max_actors` at a time) reads each batch's videos
   and transcripts from Postgres, one query per table. Reads only: the driver alone writes.
3. `DetectBatch` wraps the worker's own `DetectActor` (same models, same code) in an
   `ActorPoolStrategy` of `backfill.min_actors`..`backfill.max_actors`; each actor loads its
   models once per run. A video that fails (bad media, no words) becomes an error row; the
   rest of its batch goes on.
4. The driver streams the results (`iter_batches`: Ray Data stops producing when the driver
   falls behind) and commits `backfill.write_batch_size` videos per transaction. Each video's
   run record comes first (`record_backfill_outcome`: nothing is written when the run already
   succeeded for it, so a retried block or a second driver never writes twice), then its clips,
   replaced as a set. Killing the driver loses at most the batches not yet committed; running
   the same command again (same run id) does only what is left.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.rows import dict_row

from clipforge.db.pool import Conn, Pool
from clipforge.db.repo import clips as clips_repo
from clipforge.db.repo.backfill import record_backfill_outcome, succeeded_videos
from clipforge.db.repo.transcripts import get_transcripts
from clipforge.db.repo.videos import get_videos, merge_video_metadata, update_video
from clipforge.settings import Settings
from clipforge.storage.keys import audio_key
from clipforge.types import Transcript
from models.highlight_config import ScorerConfig
from pipelines.batch.backfill import (
    PREFIX,
    BackfillRequest,
    Progress,
    scorer_of,
    select_page,
    skipped_exported,
)
from pipelines.config import DetectConfig, PipelineConfig
from pipelines.stages.detect import DetectActor, DetectInput, scorer_digest
from pipelines.stages.lifecycle import sweep_orphan_exports
from pipelines.stages.values import StageError

log = logging.getLogger(__name__)
Batch = dict[str, npt.NDArray[Any]]  # a Ray Data batch in numpy format: column -> values


def _columns(out: dict[str, list[Any]]) -> Batch:
    return {name: np.asarray(values) for name, values in out.items()}


def load_inputs(batch: Batch, *, database_url: str) -> Batch:
    """Each video's stored keys and transcript (JSON), or why it cannot be scored."""
    ids = [uuid.UUID(str(v)) for v in batch["video_id"]]
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        videos = get_videos(conn, video_ids=ids)
        transcripts = get_transcripts(conn, video_ids=ids)
    out: dict[str, list[Any]] = {
        k: [] for k in ("video_id", "original_key", "duration_s", "transcript", "error")
    }
    for video_id in ids:
        video, transcript = videos.get(video_id), transcripts.get(video_id)
        missing = (
            "the video is gone"
            if video is None
            else "no transcript for this video"
            if transcript is None
            else "the video has no stored original"
            if not video.original_key
            else ""
        )
        out["video_id"].append(str(video_id))
        out["original_key"].append(video.original_key or "" if video else "")
        out["duration_s"].append(float(video.duration_s or 0.0) if video else 0.0)
        out["transcript"].append(json.dumps(transcript.to_dict()) if transcript else "")
        out["error"].append(missing)
    return _columns(out)


class DetectBatch:
    """Ray Data callable class: one `DetectActor` (models loaded once) per pool actor."""

    def __init__(self, settings: Settings, config: DetectConfig, scorer: ScorerConfig) -> None:
        self.actor = DetectActor(settings, config, scorer)

    def __call__(self, batch: Batch) -> Batch:
        """Clips (JSON) per video, or its error; one bad video never fails the batch."""
        out: dict[str, list[Any]] = {"video_id": [], "clips": [], "timeline": [], "error": []}
        for i, video_id in enumerate(batch["video_id"]):
            clips, timeline, error = "[]", "[]", str(batch["error"][i])
            if not error:
                clips, timeline, error = self._detect(batch, i)
            out["video_id"].append(str(video_id))
            out["clips"].append(clips)
            out["timeline"].append(timeline)
            out["error"].append(error)
        return _columns(out)

    def _detect(self, batch: Batch, i: int) -> tuple[str, str, str]:
        """(clips, timeline, "") of row `i`, or ("[]", "[]", why it failed)."""
        try:
            transcript = Transcript.from_dict(json.loads(str(batch["transcript"][i])))
        except (ValueError, KeyError, TypeError) as exc:
            return "[]", "[]", f"the stored transcript cannot be read: {exc}"
        item = DetectInput(
            job_id=i,
            original_key=str(batch["original_key"][i]),
            audio_key=audio_key(uuid.UUID(str(batch["video_id"][i]))),
            duration_s=float(batch["duration_s"][i]),
            transcript=transcript,
        )
        result, _ = self.actor.detect(item)  # the video's own failure comes back as a value
        if isinstance(result, StageError):
            return "[]", "[]", result.failure.error
        clips = json.dumps([dataclasses.asdict(c) for c in result.clips])
        return clips, json.dumps(result.timeline), ""


def pending_videos(
    pool: Pool, request: BackfillRequest, scorer: ScorerConfig, *, run: str
) -> list[uuid.UUID]:
    """The selection in keyset pages, less the videos this run already finished."""
    with pool.connection() as conn:
        done = succeeded_videos(conn, run=run, kind=PREFIX + request.stage)
    ids: list[uuid.UUID] = []
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        with pool.connection() as conn:
            page = select_page(conn, request, after=after, scorer=scorer)
        if not page:
            return ids
        ids += [video_id for _, video_id in page if video_id not in done]
        after = page[-1]


def build_dataset(
    settings: Settings,
    config: PipelineConfig,
    scorer: ScorerConfig,
    video_ids: list[uuid.UUID],
    *,
    database_url: str,
) -> Any:
    """The lazy Dataset: ids -> inputs (tasks) -> clips (detect actor pool)."""
    import ray.data

    size = config.backfill.batch_size
    ds: ray.data.Dataset = ray.data.from_items(
        [{"video_id": str(v)} for v in video_ids],
        override_num_blocks=max(1, math.ceil(len(video_ids) / size)),
    )
    ds = ds.map_batches(
        partial(load_inputs, database_url=database_url),
        batch_size=size,
        # A few queries, mostly waiting. Zero CPUs: a detect pool that fills the node would
        # otherwise leave no room to schedule its own input tasks, and the Dataset would hang.
        num_cpus=0,
        # Zero-CPU tasks are otherwise unbounded: Ray started a worker process per block (44
        # for 200 videos on 2 cores, each a new Python process importing this module)
        # before the pool scored anything. One reader per detect actor keeps up with it.
        compute=ray.data.TaskPoolStrategy(size=config.backfill.max_actors),
    )
    # Threads per actor: the node's cores split over the most actors the pool may have.
    detect = config.detect.model_copy(update={"actors": config.backfill.max_actors})
    return ds.map_batches(
        DetectBatch,
        batch_size=size,
        fn_constructor_args=(settings, detect, scorer),
        compute=ray.data.ActorPoolStrategy(
            min_size=config.backfill.min_actors, max_size=config.backfill.max_actors
        ),
        num_cpus=config.detect.num_cpus,
    )


def _rows(batch: Batch) -> Iterable[dict[str, str]]:
    columns = ("video_id", "clips", "timeline", "error")
    rows = zip(*(batch[c] for c in columns), strict=True)
    return (dict(zip(columns, map(str, values), strict=True)) for values in rows)


def _write_video(
    conn: Conn, request: BackfillRequest, run: str, version: str, row: Mapping[str, str]
) -> tuple[bool, bool]:
    """Record and write one video's result: (the run has it succeeded, its clips were written
    now)."""
    video_id = uuid.UUID(row["video_id"])
    error = str(row["error"]) or None
    fresh = record_backfill_outcome(
        conn,
        run=run,
        kind=PREFIX + request.stage,
        video_id=video_id,
        idempotency_key=f"backfill:{run}:{request.stage}:{video_id}",
        payload={"video_id": str(video_id), "chain": False, "backfill": run, "target": version},
        error=error,
    )
    if not fresh:
        return True, False  # an earlier block or driver of this run already wrote it
    if error:
        return False, False
    new = [clips_repo.NewClip(**c) for c in json.loads(row["clips"])]
    clips_repo.replace_clips(conn, video_id=video_id, clips=new)
    update_video(conn, video_id=video_id, status="ready", error=None)
    merge_video_metadata(
        conn,
        video_id=video_id,
        patch={"highlight_timeline": json.loads(row["timeline"]), "clip_model": new[0].model_name},
    )
    return True, True


def commit_batch(
    pool: Pool, request: BackfillRequest, run: str, version: str, batch: Batch
) -> tuple[int, int, list[uuid.UUID]]:
    """One transaction for the batch, a savepoint per video (a failed write fails only it).

    Returns (succeeded, failed, videos written)."""
    succeeded = failed = 0
    written: list[uuid.UUID] = []
    with pool.connection() as conn, conn.transaction():
        for row in _rows(batch):
            try:
                with conn.transaction():
                    ok, wrote = _write_video(conn, request, run, version, row)
            except psycopg.IntegrityError as exc:  # the video was deleted meanwhile
                log.warning("backfill write failed", extra={"run": run, "video": row["video_id"]})
                log.debug("backfill write error", exc_info=exc)
                ok, wrote = False, False
            succeeded, failed = succeeded + ok, failed + (not ok)
            if wrote:
                written.append(uuid.UUID(row["video_id"]))
    return succeeded, failed, written


def run_data_backfill(
    settings: Settings,
    pool: Pool,
    config: PipelineConfig,
    request: BackfillRequest,
    *,
    database_url: str,
    max_batches: int | None = None,
    report: Callable[[Progress], None] = lambda p: None,
) -> list[Progress]:
    """Re-score the selection on Ray Data; one Progress per committed batch. `max_batches`
    stops early (an interrupted run, for tests), None runs to the end."""
    if request.stage != "detect":
        raise ValueError("the Ray Data backfill runs the detect stage (--engine queue: others)")
    from pipelines.engine.worker import ensure_ray

    run = request.key()
    scorer = scorer_of(config, request)
    version = f"{scorer.version}+{scorer_digest(scorer)}"
    if skipped := skipped_exported(pool, request, scorer):
        log.warning(
            "left out videos with exports (re-scoring deletes them; pass --drop-exports)",
            extra={"run": run, "videos": skipped},
        )
    video_ids = pending_videos(pool, request, scorer, run=run)
    if not video_ids:
        return []
    ensure_ray()
    ds = build_dataset(settings, config, scorer, video_ids, database_url=database_url)
    progress: list[Progress] = []
    for batch in ds.iter_batches(
        batch_size=config.backfill.write_batch_size, batch_format="numpy", prefetch_batches=1
    ):
        succeeded, failed, written = commit_batch(pool, request, run, version, batch)
        if request.drop_exports:  # their clips' exports went by cascade: delete the files too
            for video_id in written:
                sweep_orphan_exports(settings, pool, video_id)
        progress.append(Progress(len(progress) + 1, succeeded + failed, succeeded, failed))
        report(progress[-1])
        if max_batches is not None and len(progress) >= max_batches:
            break
    return progress
