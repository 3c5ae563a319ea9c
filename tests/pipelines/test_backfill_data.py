"""The Ray Data detect backfill: a poison row fails its video only, a retried block writes
nothing twice, and a driver killed mid-run is resumed with every video at the target once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np

from benchmarks.processed_videos import OLD_VERSION, add_processed_videos
from clipforge.db.pool import Pool
from clipforge.settings import Settings
from clipforge.storage import create_store
from clipforge.storage.keys import audio_key
from models.highlight_config import ScorerConfig
from pipelines.batch.backfill import PREFIX, BackfillRequest, summarize
from pipelines.batch.data_backfill import commit_batch, pending_videos, run_data_backfill
from pipelines.config import PipelineConfig
from pipelines.stages.detect import scorer_digest
from tests.notebooks.conftest import s3_env

REPO = Path(__file__).resolve().parents[2]
V2 = ScorerConfig(version="highlight-v2", weights={"hook": 3.0, "payoff": 1.0})


def _config(config: PipelineConfig, *, batch: int, write: int) -> PipelineConfig:
    backfill = config.backfill.model_copy(
        update={"min_actors": 1, "max_actors": 2, "batch_size": batch, "write_batch_size": write}
    )
    return config.model_copy(update={"backfill": backfill})


def _clips(pool: Pool) -> dict[uuid.UUID, list[tuple[uuid.UUID, int, str]]]:
    """Per video: (clip id, rank, model version) of its clips."""
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT id, video_id, rank, model_version FROM clips ORDER BY video_id, rank"
        ).fetchall()
    out: dict[uuid.UUID, list[tuple[uuid.UUID, int, str]]] = {}
    for r in rows:
        out.setdefault(r["video_id"], []).append((r["id"], r["rank"], r["model_version"]))
    return out


def _jobs(pool: Pool, run: str) -> dict[uuid.UUID, tuple[str, int]]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT video_id, state, attempts FROM jobs WHERE run_id = %s AND kind = %s",
            (run, PREFIX + "detect"),
        ).fetchall()
    assert len(rows) == len({r["video_id"] for r in rows})  # one record per video and run
    return {r["video_id"]: (r["state"], r["attempts"]) for r in rows}


def test_poison_row_fails_its_video_only_and_retried_blocks_write_nothing_twice(
    db: Pool,
    pipeline_settings: Settings,
    pipeline_config: PipelineConfig,
    database_url: str,
    test_media: dict[str, Path],
    ray_local: None,
    tmp_path: Path,
) -> None:
    media, script = test_media["speech_short"], test_media["speech_short"].with_suffix(".json")
    good = add_processed_videos(db, pipeline_settings, media, script, 3)
    [poison] = add_processed_videos(db, pipeline_settings, media, script, 1)
    # Its stored source is corrupt and it has no audio track: detect cannot decode it.
    store = create_store(pipeline_settings)
    store.put_file(f"videos/{poison}/original.mp4", test_media["corrupt"])
    store.delete(audio_key(poison))
    with db.connection() as conn:
        conn.execute(
            "UPDATE videos SET original_key = %s WHERE id = %s",
            (f"videos/{poison}/original.mp4", poison),
        )
    V2.save(tmp_path / "v2.yaml")
    request = BackfillRequest(stage="detect", scorer_config=tmp_path / "v2.yaml", run_id="P")
    config = _config(pipeline_config, batch=4, write=4)  # all four videos in one block

    progress = run_data_backfill(pipeline_settings, db, config, request, database_url=database_url)
    assert [(p.selected, p.succeeded, p.failed) for p in progress] == [(4, 3, 1)]
    target = f"highlight-v2+{scorer_digest(V2)}"
    clips = _clips(db)
    for video in good:
        assert {v.split("+")[0] + "+" + v.split("+")[-1] for _, _, v in clips[video]} == {target}
    assert [v for _, _, v in clips[poison]] == [OLD_VERSION]  # left as it was
    jobs = _jobs(db, "P")
    assert jobs == {**{v: ("succeeded", 1) for v in good}, poison: ("failed", 1)}
    with db.connection() as conn:
        row = conn.execute("SELECT last_error FROM jobs WHERE video_id = %s", (poison,)).fetchone()
        status = conn.execute("SELECT status FROM videos WHERE id = %s", (poison,)).fetchone()
    assert row is not None and row["last_error"], row
    assert status is not None and status["status"] == "ready"  # a backfill never fails a video
    assert not summarize(db, "P", 1).ok

    # A block Ray Data retries after it was committed: the run record stops a second write.
    again = {
        "video_id": np.array([str(good[0])]),
        "clips": np.array(["[]"]),
        "timeline": np.array(["[]"]),
        "error": np.array([""]),
    }
    assert commit_batch(db, request, "P", target, again) == (1, 0, [])
    assert _clips(db)[good[0]] == clips[good[0]]  # same clip ids: nothing rewritten

    # Resuming: the good videos are at the target and left out; the poison row is selected
    # again, and a second failure is counted on its one record.
    assert pending_videos(db, request, V2, run="P") == [poison]
    failed_again = {**again, "video_id": np.array([str(poison)]), "error": np.array(["corrupt"])}
    assert commit_batch(db, request, "P", target, failed_again) == (0, 1, [])
    assert _jobs(db, "P")[poison] == ("failed", 2)
    assert _clips(db) == clips


def test_driver_killed_mid_run_is_resumed_without_duplicates(
    db: Pool,
    pipeline_settings: Settings,
    pipeline_config: PipelineConfig,
    database_url: str,
    test_media: dict[str, Path],
    ray_local: None,
    tmp_path: Path,
) -> None:
    import ray

    media, script = test_media["speech_short"], test_media["speech_short"].with_suffix(".json")
    videos = add_processed_videos(db, pipeline_settings, media, script, 4)
    V2.save(tmp_path / "v2.yaml")
    config = _config(pipeline_config, batch=1, write=1)  # one committed video per batch
    config_path = config.save(tmp_path / "pipeline.yaml")
    env = {
        **os.environ,
        **s3_env(pipeline_settings),
        "DATABASE_URL": database_url,
        "DATA_DIR": str(pipeline_settings.data_dir),
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,  # the session's Ray
    }
    args = ["--stage", "detect", "--scorer-config", str(tmp_path / "v2.yaml"), "--run-id", "K"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "pipelines.batch.backfill", *args, "--config", str(config_path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert driver.stdout is not None
    try:
        for line in driver.stdout:  # the first committed batch's progress line
            if line.startswith("{") and '"page"' in line:
                break
        else:
            raise AssertionError(f"driver exited {driver.wait()} before any progress")
    finally:
        driver.send_signal(signal.SIGKILL)
        code = driver.wait(timeout=30)
    assert code == -signal.SIGKILL, code  # the driver process was killed, it did not exit
    committed = {v for v, (state, _) in _jobs(db, "K").items() if state == "succeeded"}
    assert 1 <= len(committed) < len(videos), committed  # killed mid-run

    request = BackfillRequest(stage="detect", scorer_config=tmp_path / "v2.yaml", run_id="K")
    resumed = run_data_backfill(pipeline_settings, db, config, request, database_url=database_url)
    assert sum(p.selected for p in resumed) == len(videos) - len(committed)
    target = ("highlight-v2", scorer_digest(V2))
    clips = _clips(db)
    for video in videos:
        ranks = [rank for _, rank, _ in clips[video]]
        assert ranks == sorted(set(ranks)), ranks  # one clip per rank: nothing duplicated
        assert {(v.split("+")[0], v.split("+")[-1]) for _, _, v in clips[video]} == {target}
    assert _jobs(db, "K") == {v: ("succeeded", 1) for v in videos}  # each video written once
    summary = summarize(db, "K", len(resumed))
    assert (summary.succeeded, summary.failed, summary.ok) == (len(videos), 0, True)
    assert (
        run_data_backfill(pipeline_settings, db, config, request, database_url=database_url) == []
    )
    print(json.dumps({"committed_before_kill": len(committed)}))


def test_clipforge_backfill_passes_its_options_to_the_driver() -> None:
    # A user error is caught before any database, Ray or model is touched.
    clipforge = str(Path(sys.executable).with_name("clipforge"))
    done = subprocess.run(
        [clipforge, "backfill", "--stage", "import", "--engine", "data"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 2, done.stderr
    assert "--engine data runs the detect stage only" in done.stderr.splitlines()[-1]
