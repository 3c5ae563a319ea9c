"""`clipforge serve` as a process on its own local 2-CPU Ray.

The default config asks for 2.25 CPUs; on 2 it must scale itself down and answer `/health`
instead of waiting forever for a replica that cannot be scheduled. A config that cannot fit
must be refused at once. Each run starts its own Ray (separate from the session's `ray_local`)
and must leave none of its processes behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
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
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # never join another Ray
    return env | {
        "DATABASE_URL": str(api_settings.database_url),
        "REDIS_URL": str(api_settings.redis_url),
        "ENVIRONMENT": "test",
        "RAY_AUTH_MODE": "disabled",
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


@pytest.mark.timeout(240)
def test_default_config_becomes_ready_on_two_cpus(
    api_settings: Settings, tmp_path: Path, serve_process: list[ServeProcess]
):
    port = free_port()
    serve = ServeProcess(["--port", str(port)], _env(api_settings), tmp_path / "serve.log")
    serve_process.append(serve)
    deadline = time.monotonic() + 180
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
    assert status == 200, serve.output()[-4000:]
    assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}
    # The offline docs also work behind the Serve proxy (same app; assets from the package).
    assert httpx.get(f"http://127.0.0.1:{port}/").json()["docs"] == "/docs"
    assert "/static/docs/swagger-ui-bundle.js" in httpx.get(f"http://127.0.0.1:{port}/docs").text
    css = httpx.get(f"http://127.0.0.1:{port}/static/docs/swagger-ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    serve.track_children()
    assert serve.seen, "no Ray processes were started by the command"
    assert "scaled by 0.889" in serve.output()
    assert "taken more than 30s to be scheduled" not in serve.output()

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
