"""Backfill: re-score completed videos with a new scorer version, interrupted and resumed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from benchmarks.processed_videos import OLD_VERSION, add_processed_videos
from clipforge.db.pool import Pool
from clipforge.db.repo.exports import create_export
from clipforge.settings import Settings
from models.highlight_config import ScorerConfig
from pipelines.batch.backfill import BackfillRequest, Progress, run_backfill, skipped_exported
from pipelines.config import PipelineConfig


def _clips(pool: Pool) -> list[tuple[object, ...]]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT video_id, rank, start_s, end_s, score, split_part(model_version, '+', 1) AS v, id"
            " FROM clips ORDER BY video_id, rank"
        ).fetchall()
    return [tuple(r.values()) for r in rows]


def test_backfill_rescored_interrupted_and_resumed(
    db: Pool,
    pipeline_settings: Settings,
    pipeline_config: PipelineConfig,
    database_url: str,
    test_media: dict[str, Path],
    tmp_path: Path,
    ray_local: None,
) -> None:
    # Two ready videos stored as a worker leaves them (transcript, track, a clip of an older
    # scorer): what a backfill reads, without running the pipeline first.
    media = test_media["speech_short"]
    videos = add_processed_videos(db, pipeline_settings, media, media.with_suffix(".json"), 2)
    before = _clips(db)
    old = OLD_VERSION.split("+")[0]
    assert {row[5] for row in before} == {old} and len({row[0] for row in before}) == 2

    tuned = ScorerConfig(
        version="highlight-v2", weights={"hook": 3.0, "payoff": 1.0, "question": 1.0}
    )
    tuned.save(tmp_path / "v2.yaml")
    request = BackfillRequest(stage="detect", scorer_config=tmp_path / "v2.yaml", page_size=1)
    reports: list[Progress] = []

    def backfill(req: BackfillRequest, max_pages: int | None = None) -> list[Progress]:
        return run_backfill(
            pipeline_settings,
            db,
            pipeline_config,
            req,
            database_url=database_url,
            max_pages=max_pages,
            report=reports.append,
        )

    first = backfill(request, max_pages=1)  # interrupted after one page
    assert [(p.selected, p.succeeded, p.failed) for p in first] == [(1, 1, 0)]
    assert sorted(row[5] for row in _clips(db)).count("highlight-v2") >= 1
    assert {row[5] for row in _clips(db) if row[0] == videos[1]} <= {old, "highlight-v2"}

    resumed = backfill(request)  # picks up only what is left
    assert [(p.selected, p.succeeded) for p in resumed] == [(1, 1)]
    after = _clips(db)
    assert {row[5] for row in after} == {"highlight-v2"}
    assert {row[0] for row in after} == set(videos)
    assert not {row[6] for row in before} & {row[6] for row in after}  # old clips replaced
    with db.connection() as conn:
        per_video = conn.execute(
            "SELECT count(*) AS n, count(DISTINCT rank) AS r FROM clips GROUP BY video_id"
        ).fetchall()
        statuses = {r["status"] for r in conn.execute("SELECT status FROM videos").fetchall()}
    assert all(r["n"] == r["r"] for r in per_video) and statuses == {"ready"}

    assert backfill(request) == []  # nothing left at the old version
    # A video with an export is left out unless the run may drop its exports.
    with db.connection() as conn:
        clip = conn.execute(
            "SELECT id FROM clips WHERE video_id = %s AND rank = 1", (videos[0],)
        ).fetchone()
        assert clip is not None
        export = create_export(conn, clip_id=clip["id"], aspect_ratio="9:16", caption_style="plain")
    forced = BackfillRequest(stage="detect", scorer_config=tmp_path / "v2.yaml", force=True)
    kept = backfill(replace(forced, run_id="keep"))
    assert [(p.selected, p.succeeded) for p in kept] == [(1, 1)]
    assert skipped_exported(db, forced, tuned) == 1

    def export_rows() -> int:
        with db.connection() as conn:
            row = conn.execute(
                "SELECT count(*) AS n FROM exports WHERE id = %s", (export.id,)
            ).fetchone()
        return int(row["n"]) if row else 0

    assert export_rows() == 1
    full = backfill(replace(forced, run_id="full", drop_exports=True))
    assert sum(p.succeeded for p in full) == 2 and export_rows() == 0
    # An uninterrupted run gives the same clips as the interrupted + resumed one.
    assert [row[:6] for row in _clips(db)] == [row[:6] for row in after]
