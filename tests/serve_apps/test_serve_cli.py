"""`clipforge serve` as a process on its own local 2-CPU Ray.

The default config asks for 2.25 CPUs (4 with room to scale); on 2 it must scale itself down
and answer `/health` instead of waiting forever for a replica that cannot be scheduled. A
config that cannot fit must be refused at once. The config's `http_options` reach the proxy
(a slow request times out) and each request is logged once. Each run starts its own Ray
(separate from the session's `ray_local`) and must leave none of its processes behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from clipforge.settings import Settings
from serve_apps.deployments.launch import DEFAULT_CONFIG
from tests.utils.servers import free_port

pytestmark = pytest.mark.slow

_EXE = Path(sys.executable).with_name("clipforge")


def _env(api_settings: Settings) -> dict[str, str]:
    # Never join another Ray; RAY_AUTH_MODE is left to the command (it must turn auth off).
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    return env | {
        "DATABASE_URL": str(api_settings.database_url),
        "REDIS_URL": str(api_settings.redis_url),
        "ENVIRONMENT": "test",
        "LOG_JSON": "false",
        # The node's resources whatever the machine: 2 CPUs, no GPU.
        "RAY_OVERRIDE_RESOURCES": json.dumps({"CPU": 2, "GPU": 0}),
    }


class ServeProcess:
    """`clipforge serve` with its output in a file (Ray writes a lot; a pipe could fill)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [str(_EXE), "serve", *args], env=env, stdout=self._out, stderr=subprocess.STDOUT
        )
        # Process objects, not pids: `is_running()` also checks the start time, so a reused pid
        # is never mistaken for (or killed as) one of ours.
        self.seen: dict[int, psutil.Process] = {}

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def track_children(self) -> None:
        """Remember every process it started so far (gcs_server, raylet, workers)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)

    def leftovers(self, timeout_s: float = 30) -> list[str]:
        """Its processes still alive after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        alive = self._alive()
        while alive and time.monotonic() < deadline:
            time.sleep(0.5)
            alive = self._alive()
        return [f"{p.pid} {p.name()}" for p in alive]

    def _alive(self) -> list[psutil.Process]:
        alive = []
        for process in self.seen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process)
        return alive

    def close(self) -> None:
        """Kill whatever is left (only after a failure) and close the log."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for process in self._alive():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self._out.close()


@pytest.fixture()
def serve_process() -> Iterator[list[ServeProcess]]:
    """Started processes, cleaned up even when the test fails."""
    started: list[ServeProcess] = []
    yield started
    for process in started:
        process.close()


def _wait_healthy(serve: ServeProcess, port: int, timeout_s: float = 180) -> int | None:
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline and serve.proc.poll() is None:
        serve.track_children()
        try:
            status = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code
        except httpx.HTTPError:
            status = None
        if status == 200:
            break
        time.sleep(1)
    return status


@pytest.mark.timeout(240)
def test_default_config_becomes_ready_on_two_cpus(
    api_settings: Settings, tmp_path: Path, serve_process: list[ServeProcess]
):
    port = free_port()
    serve = ServeProcess(["--port", str(port)], _env(api_settings), tmp_path / "serve.log")
    serve_process.append(serve)
    assert _wait_healthy(serve, port) == 200, serve.output()[-4000:]
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
    assert "taken more than 30s to be scheduled" not in output
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
        _env(api_settings),
        tmp_path / "serve.log",
    )
    serve_process.append(serve)
    started = time.monotonic()
    while serve.proc.poll() is None and time.monotonic() - started < 120:
        serve.track_children()
        time.sleep(0.2)

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
    env = _env(api_settings) | {"LOG_JSON": "true"}  # request ids in the app's log lines
    serve = ServeProcess(["--port", str(port), "--config", str(path)], env, tmp_path / "s.log")
    serve_process.append(serve)
    assert _wait_healthy(serve, port) == 200, serve.output()[-4000:]
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
