"""An elastic stage pool on real Ray actors: shrinking removes idle actors only, so a call in
flight finishes; an emptied pool grows back on the next call; a pool shared by two stages sends
each stage's calls to its own member actor, at most the stage's own actors at once."""

from __future__ import annotations

import threading
import time
from typing import Any

from clipforge.settings import Settings
from pipelines.stages.actors import ActorSet, Report, StageActor, Telemetry, share_pool
from tests.utils.wait import wait_until


class NapActor(StageActor):
    """A stage actor whose call takes as long as it is told (stands in for a render)."""

    def run(self, row: dict[str, Any]) -> tuple[float, Report]:
        time.sleep(float(row["s"]))
        return float(row["s"]), self.report()


def test_shrink_spares_the_busy_actor_and_an_empty_pool_grows_back(
    ray_local: None, pipeline_settings: Settings
) -> None:
    pool = ActorSet(
        "nap", NapActor, (pipeline_settings,), count=2, num_cpus=0.05, telemetry=Telemetry()
    )
    try:
        pool.wait_ready()
        assert (pool.size, pool.loaded) == (2, 2)
        results: list[Any] = []
        call = threading.Thread(target=lambda: results.extend(pool.map("run", [{"s": 3.0}])))
        call.start()
        deadline = time.monotonic() + 30
        while pool.busy != 1:
            assert time.monotonic() < deadline, "the call never started"
            time.sleep(0.02)
        assert pool.shrink(0, idle_s=0) == 1  # the idle actor only
        assert (pool.size, pool.busy) == (1, 1)
        call.join(timeout=60)
        assert results == [3.0]  # the call in flight was not lost
        assert pool.shrink(0, idle_s=60) == 0  # idle, but not for long enough
        assert pool.shrink(0, idle_s=0) == 1 and pool.size == 0
        assert pool.map("run", [{"s": 0.0}, {"s": 0.0}]) == [0.0, 0.0]  # grows back
        assert pool.size == 1 and len(pool.starts) == 3
    finally:
        pool.close()


class OtherNapActor(NapActor):
    """A second member class, so a test can tell which member a call reached."""

    def run(self, row: dict[str, Any]) -> tuple[float, Report]:
        value, report = super().run(row)
        return -value, report


class SpanActor(StageActor):
    """A call that returns when it ran (monotonic start and end, same machine)."""

    def run(self, row: dict[str, Any]) -> tuple[tuple[float, float], Report]:
        start = time.monotonic()
        time.sleep(float(row["s"]))
        return (start, time.monotonic()), self.report()


def test_a_shared_pool_routes_each_stage_to_its_member_within_its_own_actors(
    ray_local: None, pipeline_settings: Settings
) -> None:
    pool, views = share_pool(
        "a+b",
        pipeline_settings,
        [
            ("a", SpanActor, (pipeline_settings,), 1, 0.05),
            ("b", OtherNapActor, (pipeline_settings,), 1, 0.05),
        ],
        Telemetry(),
    )
    try:
        pool.wait_ready()
        assert (pool.max_count, pool.size, pool.loaded) == (2, 2, 2)
        assert views["b"].map("run", [{"s": 0.0}, {"s": 0.1}]) == [-0.0, -0.1]
        # Two processes are free, but stage a has 1 actor: its calls run one after another.
        first, second = views["a"].map("run", [{"s": 0.5}, {"s": 0.5}])
        assert second[0] >= first[1] or first[0] >= second[1]
        # Meanwhile the other stage still gets the second process.
        results: list[Any] = []
        call = threading.Thread(target=lambda: results.extend(views["a"].map("run", [{"s": 2}])))
        call.start()
        wait_until(lambda: pool.busy == 1, timeout_s=30, what="stage a's call to start")
        assert views["b"].map("run", [{"s": 0.0}]) == [-0.0]
        call.join(timeout=60)
        assert len(results) == 1
    finally:
        pool.close()
