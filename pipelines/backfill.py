"""Backfills: re-run one stage over a selection of videos, as a Ray job.

    ray job submit -- python -m pipelines.backfill --stage detect --since 2026-01-01 \
        --scorer-config configs/highlight-v2.yaml

The selection is read from Postgres in keyset pages. Each page's videos get a job of a
backfill-only kind (`backfill-<stage>`, so regular workers never pick them up and this driver
never picks up theirs) with an idempotency key of the run, then this driver runs them through
the same stage pipeline as the worker. Resuming is re-running the same command: videos whose
job already succeeded are skipped, and for `detect` videos whose clips already carry the target
scorer version are not selected at all. One worker serves every page, so each stage actor
loads its models once per run; a failed job is recorded on the job and leaves its video as it
was (a backfill never marks a ready video failed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from clipforge.db.embedded import resolve_database_url
from clipforge.db.migrate import migrate
from clipforge.db.pool import Conn, Pool, create_pool
from clipforge.db.repo.backfill import backfill_job_states, select_backfill_page
from clipforge.queue import enqueue
from clipforge.settings import Settings, get_settings
from pipelines.config import PipelineConfig, load_pipeline_config
from pipelines.worker import PipelineWorker

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
    """

    stage: str
    since: datetime | None = None
    video_ids: tuple[uuid.UUID, ...] = ()
    scorer_config: Path | None = None
    force: bool = False
    page_size: int = 50
    run_id: str | None = None

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
    """Reported after each page."""

    page: int
    selected: int
    succeeded: int
    failed: int


def target_version(request: BackfillRequest) -> str | None:
    """The scorer config version a detect backfill moves clips to."""
    if request.stage != "detect":
        return None
    from models.highlight_config import ScorerConfig

    config = ScorerConfig.load(request.scorer_config) if request.scorer_config else ScorerConfig()
    return config.version


def select_page(
    conn: Conn, request: BackfillRequest, *, after: tuple[datetime, uuid.UUID] | None
) -> list[tuple[datetime, uuid.UUID]]:
    """The next page of (created_at, id) of videos to re-run, oldest first."""
    return select_backfill_page(
        conn,
        since=request.since,
        video_ids=request.video_ids,
        after=after,
        stale_version=None if request.force else target_version(request),
        limit=request.page_size,
    )


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
    if request.stage not in ("import", "transcribe", "detect"):
        raise ValueError("stage must be import, transcribe or detect")
    if request.scorer_config is not None:
        config = config.model_copy(
            update={
                "detect": config.detect.model_copy(update={"scorer_config": request.scorer_config})
            }
        )
    run = request.key()
    progress: list[Progress] = []
    after: tuple[datetime, uuid.UUID] | None = None
    # One worker (one set of warm actors, each loading its models once) for every page.
    with PipelineWorker(
        settings,
        config,
        pool,
        database_url=database_url,
        kind_prefix=PREFIX,
        worker_id=f"backfill-{run}",
    ) as worker:
        while max_pages is None or len(progress) < max_pages:
            with pool.connection() as conn:
                page = select_page(conn, request, after=after)
                if not page:
                    break
                with conn.transaction():
                    for _, video_id in page:
                        enqueue(
                            conn,
                            kind=PREFIX + request.stage,
                            video_id=video_id,
                            payload={"video_id": str(video_id), "chain": False, "backfill": run},
                            idempotency_key=f"backfill:{run}:{request.stage}:{video_id}",
                            max_attempts=worker.lifecycle.max_attempts,
                        )
            worker.run(until_idle=True)
            progress.append(_page_progress(pool, run, len(progress) + 1, [v for _, v in page]))
            report(progress[-1])
            after = page[-1]
    return progress


def _page_progress(pool: Pool, run: str, page: int, video_ids: Sequence[uuid.UUID]) -> Progress:
    with pool.connection() as conn:
        counts = backfill_job_states(conn, run=run, video_ids=video_ids)
    return Progress(
        page=page,
        selected=len(video_ids),
        succeeded=counts.get("succeeded", 0),
        failed=counts.get("failed", 0) + counts.get("dead", 0),
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (the `ray job submit` entrypoint)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.backfill", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--stage", required=True, choices=["import", "transcribe", "detect"])
    parser.add_argument("--since", type=datetime.fromisoformat)
    parser.add_argument("--video-id", action="append", type=uuid.UUID, default=[])
    parser.add_argument("--scorer-config", type=Path, help="tuned ScorerConfig (detect)")
    parser.add_argument(
        "--config", type=Path, help="pipeline config (default configs/pipeline.yaml)"
    )
    parser.add_argument(
        "--force", action="store_true", help="re-run videos already at the target version"
    )
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--run-id")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    request = BackfillRequest(
        stage=args.stage,
        since=args.since,
        video_ids=tuple(args.video_id),
        scorer_config=args.scorer_config,
        force=args.force,
        page_size=args.page_size,
        run_id=args.run_id,
    )
    settings = get_settings()
    url = resolve_database_url(settings)
    migrate(url)
    with create_pool(settings, url, application_name="clipforge-backfill") as pool:
        totals = run_backfill(
            settings,
            pool,
            load_pipeline_config(args.config),
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
    done = sum(p.succeeded for p in totals)
    print(
        json.dumps(
            {
                "run": request.key(),
                "pages": len(totals),
                "succeeded": done,
                "failed": sum(p.failed for p in totals),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
