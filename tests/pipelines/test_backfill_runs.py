"""Backfill runs own their jobs: resumed after a stopped driver, isolated from other runs,
finished only when every job is, and refused an embedded database inside a Ray job."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from benchmarks.processed_videos import add_processed_videos
from clipforge.db.pool import Pool
from clipforge.db.repo.clips import NewClip, replace_clips
from clipforge.db.repo.videos import create_video, update_video
from clipforge.queue import QueuePolicy, claim, enqueue
from clipforge.settings import Settings
from models.highlight_config import ScorerConfig
from pipelines.batch.backfill import PREFIX, BackfillRequest, run_backfill, summarize
from pipelines.config import PipelineConfig
from pipelines.stages.detect import scorer_digest
from tests.pipelines._ready_clip import ready_clip

KIND = PREFIX + "detect"


def _versions(pool: Pool) -> dict[uuid.UUID, set[str]]:
    """Per video, the (scorer version, config hash) pairs of its clips."""
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT video_id, split_part(model_version, '+', 1) || '#' ||"
            " substring(model_version FROM '[^+]*$') AS v FROM clips"
        ).fetchall()
    out: dict[uuid.UUID, set[str]] = {}
    for r in rows:
        out.setdefault(r["video_id"], set()).add(r["v"])
    return out


def _stranded_page(pool: Pool, run: str, video_ids: list[uuid.UUID]) -> None:
    """What `ray job stop` leaves: the run's jobs `running` under a driver that is gone, with
    leases far from expiry."""
    with pool.connection() as conn, conn.transaction():
        for video_id in video_ids:
            enqueue(
                conn,
                QueuePolicy.defaults(),
                kind=KIND,
                video_id=video_id,
                payload={"video_id": str(video_id), "chain": False, "backfill": run},
                idempotency_key=f"backfill:{run}:detect:{video_id}",
                run_id=run,
            )
        held = claim(
            conn, worker_id=f"backfill-{run}-gone", limit=10, lease_s=3600, kinds=[KIND], run_id=run
        )
    assert len(held) == len(video_ids)


def test_resumed_run_takes_over_its_jobs_and_runs_are_isolated(
    db: Pool,
    pipeline_settings: Settings,
    pipeline_config: PipelineConfig,
    database_url: str,
    test_media: dict[str, Path],
    tmp_path: Path,
    ray_local: None,
) -> None:
    # Three ready videos, stored as a worker leaves them (transcript, track, an older clip):
    # what a backfill reads, without running the pipeline first.
    media = test_media["speech_short"]
    videos = add_processed_videos(db, pipeline_settings, media, media.with_suffix(".json"), 3)
    v2 = ScorerConfig(version="highlight-v2", weights={"hook": 3.0, "payoff": 1.0})
    v3 = ScorerConfig(version="highlight-v3", weights={"hook": 1.0, "payoff": 3.0})
    v2.save(tmp_path / "v2.yaml")
    v3.save(tmp_path / "v3.yaml")
    want2 = f"highlight-v2#{scorer_digest(v2)}"

    # Run R was stopped during page 1 (two videos): their jobs are stuck `running`.
    _stranded_page(db, "R", [videos[0], videos[1]])
    # Meanwhile another run, with another scorer, re-scores only the third video.
    other = run_backfill(
        pipeline_settings,
        db,
        pipeline_config,
        BackfillRequest(
            stage="detect",
            video_ids=(videos[2],),
            scorer_config=tmp_path / "v3.yaml",
            force=True,
            run_id="other",
        ),
        database_url=database_url,
    )
    assert [(p.selected, p.succeeded) for p in other] == [(1, 1)]
    with db.connection() as conn:
        states = {r["state"] for r in conn.execute("SELECT state FROM jobs WHERE run_id = 'R'")}
    assert states == {"running"}  # the other run left R's jobs alone
    assert _versions(db)[videos[2]] == {f"highlight-v3#{scorer_digest(v3)}"}

    # Resuming R with the same run id: it takes over its two jobs and does the rest.
    request = BackfillRequest(
        stage="detect", scorer_config=tmp_path / "v2.yaml", page_size=2, run_id="R"
    )
    resumed = run_backfill(
        pipeline_settings, db, pipeline_config, request, database_url=database_url
    )
    assert [(p.selected, p.succeeded, p.failed) for p in resumed] == [(2, 2, 0), (1, 1, 0)]
    assert {v: s for v, s in _versions(db).items()} == {v: {want2} for v in videos}
    summary = summarize(db, "R", len(resumed))
    assert (summary.succeeded, summary.failed, summary.unfinished, summary.ok) == (3, 0, 0, True)
    with db.connection() as conn:
        other_jobs = conn.execute(
            "SELECT count(*) AS n FROM jobs WHERE run_id = 'other'"
        ).fetchone()
    assert other_jobs is not None and other_jobs["n"] == 1  # R never ran the other run's job
    # Resumed again: nothing left at another scorer; the summary still counts each video once.
    assert (
        run_backfill(pipeline_settings, db, pipeline_config, request, database_url=database_url)
        == []
    )
    assert summarize(db, "R", 0).succeeded == 3


def test_run_waits_for_a_job_in_backoff_and_fails_when_it_ends_dead(
    db: Pool,
    pipeline_settings: Settings,
    pipeline_config: PipelineConfig,
    database_url: str,
    ray_local: None,
) -> None:
    # A ready video without a transcript: its detect job fails (retryably) on every attempt.
    with db.connection() as conn, conn.transaction():
        video = create_video(conn, owner_key_id=None, source_kind="upload")
        update_video(conn, video_id=video.id, status="ready")
    settings = pipeline_settings.model_copy(
        update={"queue_backoff_base_s": 1.0, "queue_backoff_max_s": 1.0, "queue_max_attempts": 2}
    )
    progress = run_backfill(
        settings,
        db,
        pipeline_config,
        BackfillRequest(stage="detect", run_id="doomed"),
        database_url=database_url,
    )
    with db.connection() as conn:
        job = conn.execute("SELECT state, attempts FROM jobs WHERE run_id = 'doomed'").fetchone()
    # It did not return while the job sat `queued` in its retry delay: both attempts ran.
    assert job is not None and (job["state"], job["attempts"]) == ("dead", 2)
    assert [(p.selected, p.succeeded, p.failed) for p in progress] == [(1, 0, 1)]
    assert not summarize(db, "doomed", 1).ok
    with db.connection() as conn:
        status = conn.execute("SELECT status FROM videos WHERE id = %s", (video.id,)).fetchone()
    assert status is not None and status["status"] == "ready"  # a backfill never fails a video


def test_a_stuck_stage_times_out_and_its_job_ends_dead(
    db: Pool,
    pipeline_settings: Settings,
    pipeline_config: PipelineConfig,
    database_url: str,
    test_media: dict[str, Path],
    ray_local: None,
) -> None:
    # A ready video (original stored, a transcript) with a scored clip, made in the database
    # and storage instead of by a whole pipeline run (actor boots, ASR, detect): the detect
    # batch below times out before its actor has even started, so what an earlier run left
    # makes no difference to it. A detect that ran would replace the scored clip; one that
    # timed out leaves it.
    video_id, _ = ready_clip(db, pipeline_settings, test_media["speech_short"])
    scored = NewClip(1, 8.0, 18.0, 80.0, {"hook": 0.5}, "r", "t", "h", "highlight", "v1+abc")
    with db.connection() as conn:
        replace_clips(conn, video_id=video_id, clips=[scored])
    before = _versions(db)
    assert "v1#abc" in before[video_id]
    # Far less than the detect actors need to start: the batch is "stuck" past its deadline.
    progress = run_backfill(
        pipeline_settings.model_copy(update={"stage_timeout_s": 0.05, "queue_max_attempts": 1}),
        db,
        pipeline_config,
        BackfillRequest(stage="detect", force=True, run_id="stuck"),
        database_url=database_url,
    )
    assert [(p.selected, p.succeeded, p.failed) for p in progress] == [(1, 0, 1)]
    with db.connection() as conn:
        job = conn.execute("SELECT state, last_error FROM jobs WHERE run_id = 'stuck'").fetchone()
    assert job is not None and job["state"] == "dead"
    assert "detect timed out after 0.05 s (STAGE_TIMEOUT_S)" in job["last_error"]
    assert _versions(db) == before and video_id in before  # the video kept its clips


def test_ray_job_refuses_the_embedded_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    # What Ray's job supervisor sets on a `ray job submit` driver.
    env["RAY_JOB_CONFIG_JSON_ENV_VAR"] = '{"runtime_env": {}, "metadata": {}}'
    env["DATA_DIR"] = str(tmp_path)
    worker = (
        "from clipforge.settings import Settings; from pipelines.engine.main import run_worker; "
    )
    worker += "run_worker(Settings(), metrics_port=None)"
    for command in (["-m", "pipelines.batch.backfill", "--stage", "detect"], ["-c", worker]):
        done = subprocess.run(
            [sys.executable, *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert "DATABASE_URL is not set in this Ray job" in done.stderr.splitlines()[-1]
        assert not (tmp_path / "pgdata").exists()
