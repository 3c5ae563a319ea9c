"""Import and export served by one pool of processes (`worker.shared_pools`), on real Ray and
the real stages: a video goes from import to a rendered export through one shared process, and
shrinking the shared pool while an export renders loses nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipforge.db.pool import Pool
from clipforge.errors import ConfigError
from clipforge.settings import Settings
from pipelines.config import PipelineConfig, load_pipeline_config
from pipelines.engine.worker import PipelineWorker
from pipelines.stages.actors import PoolView
from tests.pipelines._ready_clip import queue_exports, ready_clip
from tests.pipelines.conftest import upload_video
from tests.utils.wait import wait_until


@pytest.fixture(scope="module")
def shared_config() -> PipelineConfig:
    """The tests' small config with the shipped import+export sharing and auto-export."""
    config = load_pipeline_config(
        worker__idle_poll_s=0.2,
        transcribe__asr_actors=1,
        transcribe__asr_num_cpus=0.25,
        detect__num_cpus=0.25,
        detect__top_k=2,
        detect__auto_export={"enabled": True, "top_n": 1},
        export__short_side=240,
        export__num_cpus=0.25,
    )
    assert config.worker.shared_pools == (("import", "export"),)  # the shipped setting
    return config


@pytest.fixture()
def shared_worker(
    db: Pool,
    pipeline_settings: Settings,
    shared_config: PipelineConfig,
    database_url: str,
    ray_local: None,
) -> Iterator[PipelineWorker]:
    w = PipelineWorker(
        pipeline_settings, shared_config, db, database_url=database_url, worker_id="shared"
    )
    yield w
    w.close()


def _succeeded(db: Pool) -> dict[str, int]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT kind, count(*) AS n FROM jobs WHERE state = 'succeeded' GROUP BY kind"
        ).fetchall()
    return {r["kind"]: r["n"] for r in rows}


def test_a_video_is_imported_and_exported_by_one_shared_process(
    shared_worker: PipelineWorker,
    db: Pool,
    pipeline_settings: Settings,
    test_media: dict[str, Path],
) -> None:
    upload_video(db, pipeline_settings, test_media["speech_short"])
    shared_worker.run(until_idle=True)

    assert _succeeded(db) == {"import": 1, "transcribe": 1, "detect": 1, "export": 1}
    with db.connection() as conn:
        row = conn.execute("SELECT status FROM exports").fetchone()
    assert row is not None and row["status"] == "ready"
    pools = {pool.stage: pool for pool in shared_worker.pools}
    assert list(pools) == ["import+export", "transcribe", "detect"]
    # One process served both stages: the pool started one actor, which answered both.
    assert len(pools["import+export"].starts) == 1
    assert [key for key in shared_worker.telemetry.pids if key[0] == "import+export"] == [
        ("import+export", 0)
    ]


def test_shrinking_the_shared_pool_spares_the_process_rendering_an_export(
    shared_worker: PipelineWorker,
    db: Pool,
    pipeline_settings: Settings,
    test_media: dict[str, Path],
) -> None:
    video_id, clip_id = ready_clip(db, pipeline_settings, test_media["speech_short"])
    export_ids = queue_exports(db, video_id, clip_id, 3)
    export_view = shared_worker.stages[3].actors
    assert isinstance(export_view, PoolView)
    pool = export_view.pool
    shared_worker.start()
    pool.wait_ready()  # two processes: one renders, the other idles
    assert (pool.size, pool.loaded) == (2, 2)

    busiest = [0]
    done = threading.Event()

    def watch() -> None:  # export has 1 actor: never 2 of its calls at once
        while not done.wait(0.01):
            busiest[0] = max(busiest[0], pool.busy)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    runner = threading.Thread(target=lambda: shared_worker.run(until_idle=True), daemon=True)
    runner.start()
    wait_until(lambda: pool.busy == 1, timeout_s=120, what="an export to start rendering")
    assert pool.shrink(0, idle_s=0) == 1  # the idle process only
    assert pool.size == 1
    runner.join(timeout=300)
    done.set()
    watcher.join()
    assert not runner.is_alive()
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT status FROM exports WHERE id = ANY(%s)", (export_ids,)
        ).fetchall()
    assert [r["status"] for r in rows] == ["ready"] * 3  # the render in flight was not lost
    assert _succeeded(db) == {"export": 3}
    assert busiest[0] == 1


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([["import", "render"]], "not stages"),
        ([["export"]], "2 or more"),
        ([["import", "export"], ["export", "detect"]], "one group at most"),
    ],
)
def test_shared_pools_must_name_two_or_more_stages_once(
    groups: list[list[str]], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_pipeline_config(worker__shared_pools=groups)
    assert load_pipeline_config(worker__shared_pools=[]).worker.shared_pools == ()
