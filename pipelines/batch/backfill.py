"""Backfills: re-run one stage over a selection of videos, as a Ray job.

    ray job submit -- python -m pipelines.batch.backfill --stage detect --since 2026-01-01 \
        --scorer-config configs/highlight-v2.yaml

Two engines share the request, the selection, the run records and the summary. `--engine data`
(the default for `detect`) runs the backfill as a Ray Data pipeline (`pipelines.batch.data_backfill`):
a backfill is bounded batch work, which Ray Data streams through an autoscaling actor pool.
`--engine queue` (the default for `import` and `transcribe`, whose stages split and merge
videos in ways a per-row map does not express) runs it through the queue worker's machinery,
described next.

The selection is read from Postgres in keyset pages. Each page's videos get a job of a
backfill-only kind (`backfill-<stage>`, so regular workers never pick them up and this driver
never picks up theirs) that belongs to the run (`jobs.run_id`: only this run's driver claims
it, so concurrent runs never take each other's jobs), then this driver runs them through the
same stage pipeline as the worker and waits until every job of the run has finished, retries
included. Resuming is re-running the same command (same run id): the run first takes over its
jobs a stopped driver still held, failed jobs of re-selected videos run again, videos whose job
already succeeded are skipped, and for `detect` videos whose clips already carry the target
scorer are not selected at all. One worker serves every page, so each stage actor loads its
models once per run; a failed job is recorded on the job and leaves its video as it was (a
backfill never marks a ready video failed). The exit status is 0 only if every job of the run
succeeded.

The scorer config file is read here, once, and its contents shipped to the detect actors (the
file need not exist on other nodes); its hash is recorded on every clip it scores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from clipforge.db.embedded import require_database_url
from clipforge.db.migrate import migrate
from clipforge.db.pool import Conn, Pool, create_pool
from clipforge.db.repo.backfill import backfill_job_states, run_finished, select_backfill_page
from clipforge.observability import tracing
from clipforge.observability.setup import init_observability
from clipforge.queue import QueuePolicy, enqueue, redrive, take_over_run
from clipforge.settings import Settings, get_settings
from clipforge.stages import BACKFILL_STAGES
from models.highlight_config import ScorerConfig
from pipelines.config import PipelineConfig, load_pipeline_config
from pipelines.engine.worker import PipelineWorker
from pipelines.stages.detect import load_scorer, scorer_digest

log = logging.getLogger(__name__)
PREFIX = "backfill-"


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    """What to re-run.

    Attributes:
        stage: `transcribe`, `detect` or `import`.
        since: only videos created at or after this time.
        video_ids: only these videos (with `since`, both apply).
        scorer_config: tuned ScorerConfig file for `detect` (its version is the target).
        force: select videos even if already at the target version.
        page_size: videos per page.
        run_id: names the run; the same id resumes it (default: a hash of the request).
        drop_exports: `detect` only: also re-score videos that have exports. New clips replace
            the old ones, and their exports (rows and files) are deleted with them; without
            this, such videos are left out and counted as skipped.
    """

    stage: str
    since: datetime | None = None
    video_ids: tuple[uuid.UUID, ...] = ()
    scorer_config: Path | None = None
    force: bool = False
    page_size: int = 50
    run_id: str | None = None
    drop_exports: bool = False

    def key(self) -> str:
        """Stable run id for resuming."""
        if self.run_id:
            return self.run_id
        raw = json.dumps(
            [
                self.stage,
                str(self.since),
                sorted(map(str, self.video_ids)),
                str(self.scorer_config),
                self.force,
            ]
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Progress:
    """Reported after each page (queue engine) or committed batch (Ray Data engine)."""

    page: int
    selected: int
    succeeded: int
    failed: int


@dataclass(frozen=True, slots=True)
class Summary:
    """A whole run's outcome, each of its videos counted once (over every resume)."""

    run: str
    pages: int
    succeeded: int
    failed: int
    unfinished: int

    @property
    def ok(self) -> bool:
        """Every job of the run succeeded."""
        return self.failed == 0 and self.unfinished == 0


def scorer_of(config: PipelineConfig, request: BackfillRequest) -> ScorerConfig:
    """The scorer a detect backfill scores with, read once here in the driver."""
    if request.scorer_config is not None:
        return ScorerConfig.load(request.scorer_config)
    return load_scorer(config.detect)


def target_version(scorer: ScorerConfig | None) -> tuple[str, str] | None:
    """(version, content hash) of the scorer a detect backfill moves clips to."""
    return None if scorer is None else (scorer.version, scorer_digest(scorer))


def select_page(
    conn: Conn,
    request: BackfillRequest,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    scorer: ScorerConfig | None = None,
) -> list[tuple[datetime, uuid.UUID]]:
    """The next page of (created_at, id) of videos to re-run, oldest first."""
    return _select(conn, request, after=after, scorer=scorer, limit=request.page_size)


def _select(
    conn: Conn,
    request: BackfillRequest,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    scorer: ScorerConfig | None,
    limit: int,
    exported: bool | None = None,
) -> list[tuple[datetime, uuid.UUID]]:
    target = None if request.force else target_version(scorer)
    if exported is None and request.stage == "detect" and not request.drop_exports:
        exported = False  # new clips would delete the video's exports: only when asked to
    return select_backfill_page(
        conn,
        since=request.since,
        video_ids=request.video_ids,
        after=after,
        stale_version=target[0] if target else None,
        stale_digest=target[1] if target else None,
        limit=limit,
        exported=exported,
    )


def skipped_exported(pool: Pool, request: BackfillRequest, scorer: ScorerConfig | None) -> int:
    """How many selected videos a detect run leaves out because they have exports."""
    if request.stage != "detect" or request.drop_exports:
        return 0
    with pool.connection() as conn:
        rows = _select(conn, request, after=None, scorer=scorer, limit=100_000, exported=True)
    return len(rows)


def run_backfill(
    settings: Settings,
    pool: Pool,
    config: PipelineConfig,
    request: BackfillRequest,
    *,
    database_url: str,
    max_pages: int | None = None,
    report: Callable[[Progress], None] = lambda p: None,
) -> list[Progress]:
    """Re-run `request.stage` page by page; stops after `max_pages` (None: all)."""
    if request.stage not in BACKFILL_STAGES:
        raise ValueError(f"stage must be one of {', '.join(BACKFILL_STAGES)}")
    run = request.key()
    scorer = scorer_of(config, request) if request.stage == "detect" else None
    progress: list[Progress] = []
    after: tuple[datetime, uuid.UUID] | None = None
    # One worker (one set of warm actors, each loading its models once) for every page. Its
    # id is this driver's own, so a resumed run can tell the jobs a stopped driver held.
    with PipelineWorker(
        settings,
        config,
        pool,
        database_url=database_url,
        kind_prefix=PREFIX,
        worker_id=f"backfill-{run}-{uuid.uuid4().hex[:8]}",
        run_id=run,
        scorer=scorer,
    ) as worker:
        with pool.connection() as conn:
            taken = take_over_run(conn, run_id=run, worker_id=worker.worker_id)
        if skipped := skipped_exported(pool, request, scorer):
            log.warning(
                "left out videos with exports (re-scoring deletes them; pass --drop-exports)",
                extra={"run": run, "videos": skipped},
            )
        if taken:
            log.info("took over jobs of a stopped driver", extra={"run": run, "jobs": taken})
        while max_pages is None or len(progress) < max_pages:
            with pool.connection() as conn:
                page = select_page(conn, request, after=after, scorer=scorer)
                if not page:
                    break
                # One trace per page (tracing on): its jobs store this span's context.
                attributes = {"clipforge.run.id": run, "clipforge.videos": len(page)}
                with tracing.span("backfill.page", attributes), conn.transaction():
                    for _, video_id in page:
                        _enqueue(conn, request, run, video_id, worker.policy)
            # Until every job of the run finished: one waiting out a retry delay is not done.
            worker.run(until=lambda: _finished(pool, run))
            progress.append(_page_progress(pool, run, len(progress) + 1, [v for _, v in page]))
            report(progress[-1])
            after = page[-1]
    return progress


def _enqueue(
    conn: Conn, request: BackfillRequest, run: str, video_id: uuid.UUID, policy: QueuePolicy
) -> None:
    job = enqueue(
        conn,
        policy,
        kind=PREFIX + request.stage,
        video_id=video_id,
        payload={"video_id": str(video_id), "chain": False, "backfill": run},
        idempotency_key=f"backfill:{run}:{request.stage}:{video_id}",
        run_id=run,
    )
    if job.state in ("failed", "dead"):  # selected again on a resume: give it another go
        redrive(conn, job_id=job.id)


def _finished(pool: Pool, run: str) -> bool:
    with pool.connection() as conn:
        return run_finished(conn, run=run)


def summarize(pool: Pool, run: str, pages: int) -> Summary:
    """The run's outcome over all its jobs, including those of earlier (resumed) drivers."""
    with pool.connection() as conn:
        counts = backfill_job_states(conn, run=run)
    return Summary(
        run=run,
        pages=pages,
        succeeded=counts.get("succeeded", 0),
        failed=counts.get("failed", 0) + counts.get("dead", 0),
        unfinished=counts.get("queued", 0) + counts.get("running", 0),
    )


def _page_progress(pool: Pool, run: str, page: int, video_ids: Sequence[uuid.UUID]) -> Progress:
    with pool.connection() as conn:
        counts = backfill_job_states(conn, run=run, video_ids=video_ids)
    return Progress(
        page=page,
        selected=len(video_ids),
        succeeded=counts.get("succeeded", 0),
        failed=counts.get("failed", 0) + counts.get("dead", 0),
    )


def engine_for(stage: str) -> str:
    """The default engine of a stage: Ray Data where a stage is one map over videos (detect)."""
    return "data" if stage == "detect" else "queue"


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (the `ray job submit` entrypoint); exits 1 unless every job of
    the run succeeded."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.batch.backfill", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--stage", required=True, choices=BACKFILL_STAGES)
    parser.add_argument("--since", type=datetime.fromisoformat)
    parser.add_argument("--video-id", action="append", type=uuid.UUID, default=[])
    parser.add_argument("--scorer-config", type=Path, help="tuned ScorerConfig (detect)")
    parser.add_argument(
        "--config", type=Path, help="pipeline config (default configs/pipeline.yaml)"
    )
    parser.add_argument(
        "--force", action="store_true", help="re-run videos already at the target version"
    )
    parser.add_argument(
        "--engine",
        choices=["auto", "data", "queue"],
        default="auto",
        help="data: a Ray Data pipeline (detect only); queue: backfill jobs on the queue "
        "worker's actors; auto: data for detect, queue for the other stages",
    )
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--run-id")
    parser.add_argument(
        "--drop-exports",
        action="store_true",
        help="detect: also re-score videos with exports, deleting those exports (rows and files)",
    )
    args = parser.parse_args(argv)
    engine = args.engine if args.engine != "auto" else engine_for(args.stage)
    if engine == "data" and args.stage != "detect":
        parser.error("--engine data runs the detect stage only")
    logging.basicConfig(level=logging.INFO)
    request = BackfillRequest(
        stage=args.stage,
        since=args.since,
        video_ids=tuple(args.video_id),
        scorer_config=args.scorer_config,
        force=args.force,
        page_size=args.page_size,
        run_id=args.run_id,
        drop_exports=args.drop_exports,
    )
    settings = get_settings()
    init_observability(settings, "backfill")  # Sentry and tracing, each only if configured
    url = require_database_url(settings, who="backfill")
    migrate(url)
    config = load_pipeline_config(args.config)
    run: Callable[..., list[Progress]] = run_backfill
    if engine == "data":
        from pipelines.batch.data_backfill import run_data_backfill  # it builds on this module

        run = run_data_backfill
    with create_pool(settings, url, application_name="clipforge-backfill") as pool:
        totals = run(
            settings,
            pool,
            config,
            request,
            database_url=url,
            report=lambda p: print(
                json.dumps(
                    {
                        "run": request.key(),
                        "page": p.page,
                        "selected": p.selected,
                        "succeeded": p.succeeded,
                        "failed": p.failed,
                    }
                ),
                flush=True,
            ),
        )
        summary = summarize(pool, request.key(), len(totals))
        scorer = scorer_of(config, request) if request.stage == "detect" else None
        skipped = skipped_exported(pool, request, scorer)
    print(
        json.dumps(
            {
                "run": summary.run,
                "pages": summary.pages,
                "succeeded": summary.succeeded,
                "failed": summary.failed,
                "unfinished": summary.unfinished,
                "skipped_with_exports": skipped,
            }
        ),
        flush=True,
    )
    if not summary.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
