"""Autoscaling that can schedule: `clipforge serve` on a two-node local Ray (1 CPU each).

Under load the caption deployment asks for its 3 replicas of half a CPU; with the ingress
(a quarter) they fit only across both nodes. Every replica the autoscaler asks for must end
`RUNNING` (none left `PENDING` or `STARTING`), on both nodes, and after the load it must go
back to one. Delays come from the config (no upscale delay, 1 s downscale delay) and the
replicas report their load every half second instead of every 10 s, so the test takes about a
minute, most of it starting the cluster and the replicas.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from clipforge.db.repo.api_keys import ApiKey
from clipforge.settings import Settings
from serve_apps.deployments.launch import DEFAULT_CONFIG
from tests.utils.ray_cluster import LocalCluster, local_cluster
from tests.utils.serve_process import ServeProcess, serve_env
from tests.utils.servers import free_port

pytestmark = pytest.mark.slow

MAX_REPLICAS = 3
WORDS = [{"start": i * 0.4, "end": i * 0.4 + 0.3, "text": f"word{i}."} for i in range(30)]


def _config(tmp_path: Path) -> Path:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["proxy_location"] = "HeadOnly"  # both nodes are this machine: one port, one proxy
    args = config["applications"][0]["args"]
    args["ingress"]["num_cpus"] = 0.25
    for model in ("asr", "highlight"):  # caption alone: the lightest model
        args[model]["enabled"] = False
    args["caption"] |= {
        "num_cpus": 0.5,
        "min_replicas": 1,
        "max_replicas": MAX_REPLICAS,
        "target_ongoing_requests": 1,
        "upscale_delay_s": 0,
        "downscale_delay_s": 1,
        "look_back_period_s": 11,  # the shortest Ray accepts without a warning
        "max_ongoing_requests": 4,
        "max_batch_size": 4,
    }
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _caption_state(cluster: LocalCluster) -> dict[str, Any]:
    """The caption deployment's target replica count and its replicas' states and nodes."""
    answer = httpx.get(f"{cluster.dashboard_url}/api/serve/applications/", timeout=10)
    answer.raise_for_status()
    deployment = answer.json()["applications"]["clipforge"]["deployments"]["CaptionModel"]
    states: dict[str, int] = {}
    for replica in deployment["replicas"]:
        states[replica["state"]] = states.get(replica["state"], 0) + 1
    nodes = {r["node_id"] for r in deployment["replicas"] if r["state"] == "RUNNING"}
    return {"target": deployment["target_num_replicas"], "states": states, "nodes": nodes}


def _wait_for(
    cluster: LocalCluster, done: Callable[[dict[str, Any]], bool], timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    state = _caption_state(cluster)
    while not done(state) and time.monotonic() < deadline:
        time.sleep(0.5)
        state = _caption_state(cluster)
    return state


class Load:
    """Closed-loop caption clients on a thread of their own until `stop()`."""

    def __init__(self, url: str, headers: dict[str, str], clients: int) -> None:
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._run(url, headers, clients),)
        )
        self._thread.start()

    async def _run(self, url: str, headers: dict[str, str], clients: int) -> None:
        async def client(http: httpx.AsyncClient, c: int) -> None:
            await asyncio.sleep(c * 0.05)  # staggered arrivals
            while not self._stop.is_set():
                answer = await http.post("/v1/models/captions", json={"words": WORDS})
                self.statuses.append(answer.status_code)

        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            await asyncio.gather(*(client(http, c) for c in range(clients)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=90)


@pytest.mark.timeout(300)
def test_scale_up_places_every_replica_on_two_nodes_and_scales_back_down(
    api_settings: Settings,
    owner: tuple[ApiKey, dict[str, str]],
    tmp_path: Path,
    serve_process: list[ServeProcess],
):
    env = {k: v for k, v in serve_env(api_settings).items() if k != "RAY_OVERRIDE_RESOURCES"}
    env |= {
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "RATE_LIMIT_BURST": "100000",
        # Load reports every half second (Ray's default 10 s would make this a slow test).
        "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
        "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    }
    with local_cluster(env, nodes=2, cpus_per_node=1) as cluster:
        port = free_port()
        serve = ServeProcess(
            ["--port", str(port), "--config", str(_config(tmp_path))],
            cluster.env | {"RAY_ADDRESS": cluster.address},
            tmp_path / "serve.log",
        )
        serve_process.append(serve)
        assert serve.wait_healthy(port) == 200, serve.output()[-4000:]
        start = _wait_for(cluster, lambda s: s["states"] == {"RUNNING": 1}, timeout_s=120)
        assert start["states"] == {"RUNNING": 1}, start

        load = Load(f"http://127.0.0.1:{port}", owner[1], clients=12)
        try:
            up = _wait_for(
                cluster,
                lambda s: s["target"] == MAX_REPLICAS and s["states"] == {"RUNNING": MAX_REPLICAS},
                timeout_s=150,
            )
        finally:
            load.stop()
        # Every replica asked for runs, none pending, and the third needed the second node.
        assert up["target"] == MAX_REPLICAS and up["states"] == {"RUNNING": MAX_REPLICAS}, up
        assert len(up["nodes"]) == 2, up
        assert load.statuses and set(load.statuses) == {200}, set(load.statuses)

        down = _wait_for(
            cluster, lambda s: s["target"] == 1 and s["states"] == {"RUNNING": 1}, timeout_s=90
        )
        assert down["target"] == 1 and down["states"] == {"RUNNING": 1}, down

        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(timeout=60) == 0, serve.output()[-4000:]
