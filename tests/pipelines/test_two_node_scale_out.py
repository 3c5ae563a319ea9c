"""Elastic stage pools on a local Ray that gains a node: 12 exports queued on a head of 1 CPU,
whose export pool (2 actors of 0.75 CPU at most) can run one actor there and asks Ray for a
second; a second node of 1 CPU joins (as the Ray autoscaler would add one for that request),
the pending actor is placed on it, and after the queue drains the pool shrinks back to one
actor, the one on the added node removed first. Exports only: the scale-out mechanics, not
model loading, and each render takes about a second. The export pool is the shipped one, shared
with import (`worker.shared_pools`): its processes are `SharedActor`s.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from clipforge.db.migrate import migrate
from clipforge.db.pool import Pool, create_pool
from clipforge.settings import Settings
from pipelines.config import load_pipeline_config
from tests.notebooks.conftest import s3_env
from tests.pipelines._ready_clip import queue_exports, ready_clip
from tests.utils.ray_cluster import LocalCluster, add_node, local_cluster
from tests.utils.servers import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
EXPORTS = 12
IDLE_S = 2.0


def _actors(cluster: LocalCluster) -> list[tuple[str, str, str]]:
    """(class, state, node id) of every stage actor the cluster knows of."""
    from ray.util.state import list_actors

    actors = list_actors(
        address=cluster.dashboard_url, limit=1000, timeout=10, raise_on_missing_output=False
    )
    return [(a.class_name, a.state, a.node_id or "") for a in actors if a.class_name]


# The process class of the import+export pool (`pipelines.stages.actors.SharedActor`).
EXPORTER = "SharedActor"


def _alive_exporters(cluster: LocalCluster) -> list[str]:
    return [n for c, s, n in _actors(cluster) if c == EXPORTER and s == "ALIVE"]


def _ready(pool: Pool) -> int:
    with pool.connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM exports WHERE status = 'ready'").fetchone()
    return int(row["n"]) if row else 0


def _gauge(port: int, name: str, stage: str) -> float | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = re.search(rf'^{name}{{stage="{stage}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


def _until(
    what: str, check: Callable[[], bool], timeout_s: float, worker: subprocess.Popen[bytes]
) -> float:
    """Wait for `check()` to be true; returns when it became so (time.monotonic())."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert worker.poll() is None, f"the worker exited while waiting for {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:g} s"
        time.sleep(0.2)
    return time.monotonic()


@pytest.mark.timeout(300)
def test_pools_grow_onto_an_added_node_and_shrink_when_idle(
    fresh_database_url: str,
    pipeline_settings: Settings,
    redis_url: str,
    test_media: dict[str, Path],
    tmp_path: Path,
) -> None:
    migrate(fresh_database_url)
    config = load_pipeline_config(
        worker__idle_poll_s=0.2,
        worker__pool_poll_s=0.2,
        worker__pool_idle_s=IDLE_S,
        worker__work_per_actor=1,
        import__num_cpus=0.05,
        transcribe__asr_actors=1,
        transcribe__asr_num_cpus=0.05,
        detect__num_cpus=0.05,
        export__actors=2,
        export__num_cpus=0.75,  # one per node of 1 CPU
        export__short_side=144,
        export__face_tracking=False,
    )
    config_path = config.save(tmp_path / "pipeline.yaml")
    env = {
        "DATABASE_URL": fresh_database_url,
        "REDIS_URL": redis_url,
        "DATA_DIR": str(tmp_path / "data"),
        "ENVIRONMENT": "test",
        "RAY_AUTH_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **s3_env(pipeline_settings),
    }
    settings = pipeline_settings.model_copy(update={"database_url": fresh_database_url})
    with create_pool(
        settings, fresh_database_url, application_name="scale-out", max_size=2
    ) as pool:
        video_id, clip_id = ready_clip(pool, settings, test_media["speech_short"])
        queue_exports(pool, video_id, clip_id, EXPORTS)
        with local_cluster(os.environ | env, nodes=1, cpus_per_node=1) as cluster:
            port = free_port()
            clipforge = str(Path(sys.executable).with_name("clipforge"))
            cmd = [clipforge, "worker", "--config", str(config_path), "--metrics-port", str(port)]
            log_path = tmp_path / "worker.log"
            with log_path.open("wb") as log:
                worker = subprocess.Popen(
                    cmd,
                    cwd=REPO,
                    env=cluster.env | {"RAY_ADDRESS": cluster.address},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                # One actor runs on the head; the second waits for a CPU: a resource request.
                first = _until("first export", lambda: _ready(pool) >= 1, 60, worker)
                _until("second export", lambda: _ready(pool) >= 2, 60, worker)
                pending = [c for c, s, _ in _actors(cluster) if s == "PENDING_CREATION"]
                assert pending == [EXPORTER], _actors(cluster)
                head = set(_alive_exporters(cluster))
                joined = add_node(cluster, num_cpus=1)
                before = (_ready(pool) - 1) / (joined - first)
                placed = _until(
                    "export actor on the added node",
                    lambda: len(set(_alive_exporters(cluster)) - head) == 1,
                    30,
                    worker,
                )
                at_placed = _ready(pool)
                assert _gauge(port, "clipforge_stage_actors", "export") == 2
                drained = _until("all exports", lambda: _ready(pool) == EXPORTS, 120, worker)
                after = (EXPORTS - at_placed) / max(drained - placed, 1e-6)
                # Idle for IDLE_S, the pool goes back to the actor on the head.
                # (90 s: the shrink itself comes IDLE_S after the last export, but on a loaded
                # machine Ray's state of the removed actor can lag well behind.)
                shrunk = _until(
                    "pool shrink", lambda: _alive_exporters(cluster) == sorted(head), 90, worker
                )
                assert _gauge(port, "clipforge_stage_actors", "export") == 1
                classes = {c for c, _, _ in _actors(cluster)}
                assert classes == {EXPORTER}, classes  # no stage without work started
            finally:
                worker.terminate()
                worker.wait(timeout=60)
    print(
        f"load {os.getloadavg()[0]:.1f}: placed on the added node {placed - joined:.1f} s after "
        f"it joined; {before:.2f} exports/s before, {after:.2f} after "
        f"({at_placed} of {EXPORTS} done when placed); shrunk {shrunk - drained:.1f} s after "
        f"the queue drained (idle period {IDLE_S:g} s)"
    )
