"""A real Prometheus scrapes a running API and worker; every Grafana panel query is evaluated.

The Prometheus config is cluster/prometheus/prometheus.yml (with alerts.yml) with only the
targets and intervals rewritten, so job names and rules are the ones production uses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from clipforge.db.pool import Pool
from clipforge.queue import QueuePolicy, enqueue
from tests.cluster.conftest import CLUSTER
from tests.cluster.worker_probe import KIND
from tests.utils.factories import make_key
from tests.utils.servers import free_port, wait_for_port

DASHBOARDS = sorted((CLUSTER / "grafana" / "dashboards").glob("*.json"))
# Panels over these metrics must return series here: the API and worker export them.
LIVE_PREFIXES = (
    "clipforge_http_",
    "clipforge_queue_",
    "clipforge_jobs_",
    "clipforge_job_duration",
    "clipforge_claim_batch",
    "clipforge_cache_requests",
    "clipforge_db_pool_",
)
# Exported by Ray from Serve replicas (not running here), or not exported yet (reported).
NOT_LIVE = ("ray_", "clipforge_video_seconds_processed_total")


def panel_queries() -> list[tuple[str, str]]:
    """(dashboard/panel title, expr) of every Prometheus target of every dashboard (the Loki
    and Tempo panels of clipforge-logs are checked by tests/cluster/test_logging.py)."""
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                if target["datasource"]["type"] == "prometheus":
                    out.append((f"{path.stem}/{panel['title']}", target["expr"]))
    return out


def _config(api: str, worker: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((CLUSTER / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config.pop("alerting", None)  # no Alertmanager here (test_alertmanager.py runs one)
    targets = {"clipforge-api": [api], "clipforge-worker": [worker]}
    config["scrape_configs"] = [
        dict(job, static_configs=[{"targets": targets[job["job_name"]]}])
        for job in config["scrape_configs"]
        if job["job_name"] in targets
    ]
    return config


@pytest.fixture(scope="module")
def prometheus(
    prometheus_bin: str, live_api: str, live_worker: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Prometheus on a free loopback port scraping the API and worker every second."""
    root = tmp_path_factory.mktemp("prometheus")
    shutil.copy(CLUSTER / "prometheus" / "alerts.yml", root / "alerts.yml")
    (root / "prometheus.yml").write_text(yaml.safe_dump(_config(live_api, live_worker)))
    port = free_port()
    proc = subprocess.Popen(
        [
            prometheus_bin,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, timeout_s=30, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _traffic(api: str, pool: Pool) -> None:
    """Requests of every kind the panels show: reads, a create, a cache hit, 401 and 404."""
    _, raw = make_key(pool, "cluster-metrics")
    auth = {"Authorization": f"Bearer {raw}"}
    with httpx.Client(base_url=f"http://{api}", timeout=10) as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
            assert client.get("/v1/videos", headers=auth).status_code == 200
        assert client.get("/v1/videos").status_code == 401
        created = client.post(
            "/v1/videos", json={"source_url": "https://93.184.216.34/talk.mp4"}, headers=auth
        )
        assert created.status_code == 202, created.text
        video_id = created.json()["video"]["id"]
        for _ in range(2):  # a miss, then a hit
            assert client.get(f"/v1/videos/{video_id}", headers=auth).status_code == 200
        missing = "00000000-0000-0000-0000-000000000000"
        assert client.get(f"/v1/videos/{missing}", headers=auth).status_code == 404
    with pool.connection() as conn, conn.transaction():
        for i in range(3):
            enqueue(conn, QueuePolicy.defaults(), kind=KIND, payload={"i": i})


def _query(prom: str, expr: str) -> list[Any]:
    body = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    result: list[Any] = body["data"]["result"]
    return result


def test_every_panel_query_parses_and_live_panels_have_series(
    prometheus: str, live_api: str, db: Pool
) -> None:
    _traffic(live_api, db)
    queries = panel_queries()
    assert len(queries) >= 20
    live = [
        (title, expr)
        for title, expr in queries
        if any(p in expr for p in LIVE_PREFIXES) and not any(n in expr for n in NOT_LIVE)
    ]
    pending = dict(live)
    deadline = time.monotonic() + 40
    while pending and time.monotonic() < deadline:
        for title, expr in list(pending.items()):
            if _query(prometheus, expr):
                del pending[title]
        time.sleep(1)
    assert not pending, f"panels without series after 40 s: {sorted(pending)}"
    for _title, expr in queries:  # every query, including Ray's, is valid PromQL
        _query(prometheus, expr)
    up = {r["metric"]["job"]: r["value"][1] for r in _query(prometheus, "up")}
    assert up == {"clipforge-api": "1", "clipforge-worker": "1"}
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    # Every alert rule evaluates against real series without error.
    assert all(rule["health"] != "err" for group in rules for rule in group["rules"])


def test_panels_are_grouped_as_the_runbook_expects() -> None:
    titles = {title for title, _ in panel_queries()}
    for expected in (
        "clipforge-api/p95 latency by route",
        "clipforge-pipeline/Queue depth by stage and state",
        "clipforge-pipeline/Minutes of video processed per minute by stage",
        "clipforge-models/Mean batch size by deployment",
        "clipforge-api/Cache hit rate by namespace",
    ):
        assert expected in titles
    assert [Path(p).name for p in DASHBOARDS] == [
        "clipforge-api.json",
        "clipforge-logs.json",
        "clipforge-models.json",
        "clipforge-pipeline.json",
    ]
