"""An elastic stage pool on real Ray actors: shrinking removes idle actors only, so a call in
flight finishes; an emptied pool grows back on the next call."""

from __future__ import annotations

import threading
import time
from typing import Any

from clipforge.settings import Settings
from pipelines.stages.actors import ActorSet, Report, StageActor, Telemetry


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
