"""The Ray Data detect backfill under a node loss on a two-node local Ray cluster.

Its own file (the cluster helpers are test_two_node_cluster.py's) so that pytest-xdist, which
keeps a file's tests on one worker, can run it beside the other two-node tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.processed_videos import add_processed_videos
from clipforge.db.migrate import migrate
from clipforge.db.pool import Pool, create_pool
from clipforge.settings import Settings
from models.highlight_config import ScorerConfig
from pipelines.stages.detect import scorer_digest
from tests.pipelines.test_two_node_cluster import (
    REPO,
    TUNED,
    _app_env,
    _second_node_id,
    _write_config,
)
from tests.utils.ray_cluster import LocalCluster, local_cluster
from tests.utils.wait import wait_until


def _pool_nodes(cluster: LocalCluster) -> set[str]:
    """Ids of the nodes a detect pool actor of Ray Data is alive on."""
    from ray.util.state import list_actors

    actors = list_actors(
        address=cluster.dashboard_url, limit=1000, timeout=10, raise_on_missing_output=False
    )
    pool = "MapWorker(MapBatches(DetectBatch))"  # Ray Data names the class after its operator
    return {a.node_id for a in actors if a.class_name == pool and a.state == "ALIVE"}


def _committed(pool: Pool, run: str) -> int:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM jobs WHERE run_id = %s AND state = 'succeeded'", (run,)
        ).fetchone()
    return int(row["n"]) if row else 0


@pytest.mark.timeout(420)
def test_second_node_killed_mid_data_backfill(
    fresh_database_url: str,
    pipeline_settings: Settings,
    redis_url: str,
    test_media: dict[str, Path],
    tmp_path: Path,
) -> None:
    """SIGKILL the second node while the Ray Data detect backfill runs on both: the driver
    finishes with exit 0, and every video is at the tuned scorer once, its clips not doubled.

    Two pool actors of 0.5 CPU: Ray Data spreads them, one per node; after the loss the lost one
    restarts on the head (which has room for it) and reruns the calls it held; blocks stored on
    the lost node are rebuilt from their lineage.
    """
    migrate(fresh_database_url)
    config_path = _write_config(
        tmp_path,
        stage_cpus=0.5,
        backfill__min_actors=2,
        backfill__max_actors=2,
        backfill__batch_size=1,  # many small calls: the lost node holds some in flight
        backfill__write_batch_size=1,
    )
    app_env = _app_env(fresh_database_url, redis_url, pipeline_settings, tmp_path)
    settings = pipeline_settings.model_copy(update={"database_url": fresh_database_url})
    media = test_media["speech_short"]
    with create_pool(settings, fresh_database_url, application_name="two-node", max_size=2) as pool:
        videos = add_processed_videos(pool, settings, media, media.with_suffix(".json"), 10)
        with local_cluster(os.environ | app_env, nodes=2, cpus_per_node=1) as cluster:
            second = _second_node_id(cluster)
            driver_env = cluster.env | {"RAY_ADDRESS": cluster.address}  # attaches to the head
            cmd = [sys.executable, "-m", "pipelines.batch.backfill", "--stage", "detect"]
            cmd += ["--engine", "data", "--run-id", "node-loss", "--scorer-config", TUNED]
            log_path = tmp_path / "driver.log"
            with log_path.open("wb") as log:
                driver = subprocess.Popen(
                    [*cmd, "--config", str(config_path)],
                    cwd=REPO,
                    env=driver_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:

                def mid_run() -> bool:  # a video committed, the second node's actor taking calls
                    assert driver.poll() is None, log_path.read_text()[-6000:]
                    return bool(_committed(pool, "node-loss")) and second in _pool_nodes(cluster)

                wait_until(  # two actor processes loading models
                    mid_run,
                    timeout_s=300,
                    interval_s=0.2,
                    what=lambda: log_path.read_text()[-6000:],
                )
                before = _committed(pool, "node-loss")
                killed = cluster.kill_node(1)
                code = driver.wait(timeout=300)
            finally:
                if driver.poll() is None:
                    driver.kill()
                    driver.wait(timeout=10)
        out = log_path.read_text()
        assert code == 0, out[-6000:]
        assert 1 <= before < len(videos) - 1, before  # killed mid-run, work left for node 2
        print(f"killed {killed} processes after {before} of {len(videos)} videos were committed")

        summary = json.loads(next(x for x in reversed(out.splitlines()) if '"unfinished"' in x))
        assert (summary["succeeded"], summary["failed"], summary["unfinished"]) == (10, 0, 0)
        tuned = ScorerConfig.load(REPO / TUNED)
        with pool.connection() as conn:
            jobs = conn.execute(
                "SELECT video_id, state, attempts FROM jobs WHERE run_id = 'node-loss'"
            ).fetchall()
            clips = conn.execute("SELECT video_id, rank, model_version FROM clips").fetchall()
        # One run record per video, succeeded at its first write: nothing was written twice.
        assert sorted((r["video_id"], r["state"], r["attempts"]) for r in jobs) == sorted(
            (v, "succeeded", 1) for v in videos
        )
        ranks = sorted((r["video_id"], r["rank"]) for r in clips)
        assert len(ranks) == len(set(ranks)) and {v for v, _ in ranks} == set(videos)
        for row in clips:
            version = row["model_version"].split("+")
            assert (version[0], version[-1]) == (tuned.version, scorer_digest(tuned)), row
