"""`clipforge serve` as a process on its own local 2-CPU Ray.

The default config asks for 2.25 CPUs (4 with room to scale); on 2 it must scale itself down
and answer `/health` instead of waiting forever for a replica that cannot be scheduled. A
config that cannot fit must be refused at once. The config's `http_options` reach the proxy
(a slow request times out) and each request is logged once. Each run starts its own Ray
(separate from the session's `ray_local`) and must leave none of its processes behind.
"""

from __future__ import annotations

import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from clipforge.settings import Settings
from serve_apps.deployments.launch import DEFAULT_CONFIG
from tests.utils.serve_process import ServeProcess, serve_env
from tests.utils.servers import free_port
from tests.utils.wait import wait_until

pytestmark = pytest.mark.slow


_SLOW_TO_SCHEDULE = re.compile(
    r"Deployment '(\w+)'.*taken more than 30s to be scheduled.*"
    r'Resources required for each replica: \{"CPU": ([\d.]+)\}, '
    r'total resources available: \{"CPU": ([\d.]+)\}'
)


def _unschedulable(output: str) -> list[str]:
    """Deployments Serve reported waiting for more CPU than the node had free.

    Serve logs the same warning when a replica's worker process is merely slow to start (a busy
    machine): those had the CPU available and are not what the fitting is about.
    """
    found = []
    for match in _SLOW_TO_SCHEDULE.finditer(output):
        name, need, free = match.group(1), float(match.group(2)), float(match.group(3))
        if need > free:
            found.append(f"{name}: needs {need} CPU, {free} free")
    return found


@pytest.mark.timeout(240)
def test_default_config_becomes_ready_on_two_cpus(
    api_settings: Settings, tmp_path: Path, serve_process: list[ServeProcess]
):
    port = free_port()
    serve = ServeProcess(["--port", str(port)], serve_env(api_settings), tmp_path / "serve.log")
    serve_process.append(serve)
    assert serve.wait_healthy(port) == 200, serve.output()[-4000:]
    assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}
    # The offline docs also work behind the Serve proxy (same app; assets from the package).
    assert httpx.get(f"http://127.0.0.1:{port}/").json()["docs"] == "/docs"
    assert "/static/docs/swagger-ui-bundle.js" in httpx.get(f"http://127.0.0.1:{port}/docs").text
    css = httpx.get(f"http://127.0.0.1:{port}/static/docs/swagger-ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    serve.track_children()
    assert serve.seen, "no Ray processes were started by the command"
    output = serve.output()
    assert "scaled by 0.500" in output
    assert "AsrModel may scale to 2 replicas, not 4" in output
    assert _unschedulable(output) == []
    # Its private Ray runs without token auth, and the default config raises no Ray warning.
    assert "Token authentication is enabled" not in output
    assert "FutureWarning" not in output and "DeprecationWarning" not in output

    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=60) == 0, serve.output()[-4000:]
    assert serve.leftovers() == []


@pytest.mark.timeout(180)
def test_a_config_that_cannot_fit_is_refused_at_once(
    api_settings: Settings, tmp_path: Path, serve_process: list[ServeProcess]
):
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    args = config["applications"][0]["args"]
    args["asr"]["num_cpus"] = 8
    args["highlight"]["num_gpus"] = 1
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(config))
    serve = ServeProcess(
        ["--port", str(free_port()), "--config", str(path)],
        serve_env(api_settings),
        tmp_path / "serve.log",
    )
    serve_process.append(serve)

    def exited() -> bool:
        serve.track_children()
        return serve.proc.poll() is not None

    wait_until(exited, timeout_s=120, interval_s=0.2, what=lambda: serve.output()[-4000:])

    output = serve.output()
    assert serve.proc.returncode == 2, output[-4000:]
    error = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(error) == 1, output[-4000:]
    assert "AsrModel (args.asr) asks for 8 CPUs per replica; no node has more than 2" in error[0]
    assert "HighlightScorer (args.highlight) asks for 1 GPU per replica" in error[0]
    assert "Traceback" not in output
    assert serve.leftovers() == []


def _slow_body() -> Iterator[bytes]:
    yield b'{"source_url": '
    time.sleep(4)  # the proxy's 1 s request timeout passes while the body is still coming
    yield b'"https://93.184.216.34/a.mp4"}'


@pytest.mark.timeout(180)
def test_http_options_apply_and_each_request_is_logged_once(
    api_settings: Settings, tmp_path: Path, serve_process: list[ServeProcess]
):
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["http_options"]["request_timeout_s"] = 1
    args = config["applications"][0]["args"]
    for model in ("asr", "highlight", "caption"):  # the ingress alone starts fast
        args[model]["enabled"] = False
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    env = serve_env(api_settings) | {"LOG_JSON": "true"}  # request ids in the app's log lines
    serve = ServeProcess(["--port", str(port), "--config", str(path)], env, tmp_path / "s.log")
    serve_process.append(serve)
    assert serve.wait_healthy(port) == 200, serve.output()[-4000:]
    url = f"http://127.0.0.1:{port}"

    request_id = f"once-{uuid.uuid4().hex}"
    answer = httpx.get(f"{url}/v1/videos", headers={"X-Request-ID": request_id}, timeout=10)
    # (The Serve proxy repeats the app's x-request-id header with the same value.)
    assert answer.status_code == 401 and request_id in answer.headers["x-request-id"]

    started = time.monotonic()
    slow = httpx.post(
        f"{url}/v1/videos",
        content=_slow_body(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert slow.status_code == 408, slow.text
    assert time.monotonic() - started < 4.5
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200

    serve.proc.send_signal(signal.SIGTERM)  # flushes the replicas' logs to the driver
    assert serve.proc.wait(timeout=60) == 0, serve.output()[-4000:]
    logged = [line for line in serve.output().splitlines() if request_id in line]
    assert len(logged) == 1, logged
    assert '"route": "/v1/videos"' in logged[0] and '"status": 401' in logged[0]
    assert serve.leftovers() == []
