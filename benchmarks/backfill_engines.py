"""A detect backfill three ways, in one run: the Ray Data engine, the queue-driven engine and a
plain loop, each re-scoring the same N processed videos to a scorer version of its own.

    python -m benchmarks.backfill_engines [--videos 200] [--actors 2] [--engines data queue loop]
                                          [--nodes 2]

The videos are made by `benchmarks.processed_videos` (a real source and audio track each, a
synthesized transcript, clips of an older scorer), in a scratch database on DATABASE_URL's
server (or an embedded one) with media in a local folder. Every engine's time is cold: actor
processes, model loads and the Postgres writes are inside it. The Ray Data pool and the queue
worker get the same number of detect actors (`--actors`, CPUs split evenly); the loop runs one
`DetectActor` in this process with every core. Prints one JSON line per engine: the whole
time, the time to the first committed result (actor start and model loads), and the rate after
it (warm). The queue engine works in pages of 10 videos, each waited for before the next.

`--nodes 2` runs the same on a local cluster of that many nodes (`ray start` processes on this
machine, the cores split between them, `tests/utils/ray_cluster.py`): one detect actor of 1 CPU
per node, so Ray Data's pool and the queue worker's actors score on every node; each line then
says on how many nodes the engine's detect actors ran.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from benchmarks._db import scratch_database
from benchmarks.pipeline_throughput import _media
from benchmarks.processed_videos import add_processed_videos
from clipforge.db.pool import Pool, create_pool
from clipforge.db.repo import clips as clips_repo
from clipforge.db.repo.transcripts import get_transcripts
from clipforge.db.repo.videos import get_videos
from clipforge.settings import Settings, load_settings
from clipforge.storage.keys import audio_key
from models.highlight_config import ScorerConfig
from pipelines.batch.backfill import BackfillRequest, run_backfill, summarize
from pipelines.batch.data_backfill import run_data_backfill
from pipelines.config import PipelineConfig, load_pipeline_config
from pipelines.stages.detect import DetectActor, DetectInput
from pipelines.stages.values import StageError


def _loop(
    settings: Settings,
    pool: Pool,
    config: PipelineConfig,
    scorer: ScorerConfig,
    ids: list[uuid.UUID],
    mark: Callable[[int], None],
) -> int:
    """The plain baseline: one detector, one video after another, one transaction each."""
    detector = DetectActor(settings, config.detect.model_copy(update={"actors": 1}), scorer)
    done = 0
    for video_id in ids:
        with pool.connection() as conn:
            video = get_videos(conn, video_ids=[video_id])[video_id]
            transcript = get_transcripts(conn, video_ids=[video_id])[video_id]
        item = DetectInput(
            job_id=0,
            original_key=video.original_key,
            audio_key=audio_key(video_id),
            duration_s=video.duration_s,
            transcript=transcript,
        )
        out, _ = detector.detect(item)
        if isinstance(out, StageError):
            continue
        with pool.connection() as conn, conn.transaction():
            clips_repo.replace_clips(conn, video_id=video_id, clips=out.clips)
        done += 1
        mark(1)
    return done


def _mark(marks: list[tuple[float, int]], videos: int) -> None:
    marks.append((time.monotonic(), videos))


def _runner(
    engine: str,
    settings: Settings,
    pool: Pool,
    config: PipelineConfig,
    scorer: ScorerConfig,
    request: BackfillRequest,
    ids: list[uuid.UUID],
    url: str,
) -> Callable[[Callable[[int], None]], int]:
    """The engine's run: it calls `mark(n)` when n more videos are committed and returns how
    many videos ended re-scored."""
    if engine == "loop":
        return lambda mark: _loop(settings, pool, config, scorer, ids, mark)
    backfill = run_data_backfill if engine == "data" else run_backfill

    def run(mark: Callable[[int], None]) -> int:
        backfill(
            settings, pool, config, request, database_url=url, report=lambda p: mark(p.selected)
        )
        return summarize(pool, request.key(), 0).succeeded

    return run


@contextlib.contextmanager
def _ray(cpus: int, nodes: int) -> Iterator[str | None]:
    """This process's Ray: a local one, or a cluster of `nodes` local nodes (its dashboard URL)."""
    import ray

    if nodes == 1:
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        try:
            yield None
        finally:
            ray.shutdown()
        return
    from tests.utils.ray_cluster import local_cluster  # the tests' cluster: no second copy

    per_node = max(1, cpus // nodes)
    with local_cluster(dict(os.environ), nodes=nodes, cpus_per_node=per_node) as cluster:
        ray.init(address=cluster.address, log_to_driver=False)
        try:
            yield cluster.dashboard_url
        finally:
            ray.shutdown()


def _actor_nodes(dashboard: str | None, engine: str) -> dict[str, int]:
    """On a cluster: on how many nodes the engine's detect actors ran (Ray Data's pool actors,
    the queue worker's `DetectActor`s; the loop's detector is this process)."""
    kind = {"data": "MapWorker(MapBatches(DetectBatch))", "queue": "DetectActor"}.get(engine)
    if dashboard is None or kind is None:
        return {}
    from ray.util.state import list_actors

    actors = list_actors(address=dashboard, limit=10_000, raise_on_missing_output=False)
    return {"actor_nodes": len({a.node_id for a in actors if a.class_name == kind and a.node_id})}


def main() -> None:
    """Run the engines one after another on the same videos and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--actors", type=int, default=2, help="detect actors of data and queue")
    parser.add_argument("--engines", nargs="+", default=["data", "queue", "loop"])
    parser.add_argument("--nodes", type=int, default=1, help="a local cluster of this many nodes")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    cpus = os.cpu_count() or 2
    media = _media("speech_short")
    with (
        scratch_database() as url,
        tempfile.TemporaryDirectory(prefix="cf-bf-bench-") as tmp,
        _ray(cpus, args.nodes) as dashboard,
    ):
        settings = load_settings(database_url=url, data_dir=Path(tmp), environment="test")
        config = load_pipeline_config(
            detect__actors=args.actors,
            detect__num_cpus=cpus / args.actors,
            backfill__min_actors=args.actors,
            backfill__max_actors=args.actors,
        )
        with create_pool(settings, url, application_name="bench-backfill") as pool:
            started = time.monotonic()
            ids = add_processed_videos(
                pool, settings, media, media.with_suffix(".json"), args.videos
            )
            print(json.dumps({"setup_s": round(time.monotonic() - started, 1), "videos": len(ids)}))
            for n, engine in enumerate(args.engines):
                scorer = ScorerConfig(
                    version=f"highlight-bench-{engine}", weights={"hook": 1.0 + n}
                )
                path = Path(tmp) / f"{engine}.yaml"
                scorer.save(path)
                request = BackfillRequest(
                    stage="detect", scorer_config=path, run_id=engine, page_size=10
                )
                run = _runner(engine, settings, pool, config, scorer, request, ids, url)
                marks: list[tuple[float, int]] = []
                load = os.getloadavg()[0]
                started = time.monotonic()
                done = run(partial(_mark, marks))
                seconds = time.monotonic() - started
                # Past the first committed result the engines are warm (actors up, models in).
                first_at, first_n = marks[0] if marks else (started, 0)
                warm_rate = (done - first_n) / max(time.monotonic() - first_at, 1e-9)
                print(
                    json.dumps(
                        {
                            "engine": engine,
                            "videos": done,
                            "seconds": round(seconds, 1),
                            "videos_per_s": round(done / seconds, 2),
                            "first_result_s": round(first_at - started, 1),
                            "warm_videos_per_s": round(warm_rate, 2),
                            "load_before": round(load, 1),
                            "load_after": round(os.getloadavg()[0], 1),
                            **_actor_nodes(dashboard, engine),
                        }
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
