"""`clipforge serve` as a subprocess for tests, and the environment it runs with.

Its output goes to a file (Ray writes a lot; a pipe could fill). Every process it starts is
remembered as a `psutil.Process` so a test can show none is left behind, and only those are
ever killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from clipforge.settings import Settings

EXE = Path(sys.executable).with_name("clipforge")


def serve_env(settings: Settings) -> dict[str, str]:
    """This process's environment for `clipforge serve` on its own local 2-CPU Ray."""
    # Never join another Ray; RAY_AUTH_MODE is left to the command (it must turn auth off).
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    return env | {
        "DATABASE_URL": str(settings.database_url),
        "REDIS_URL": str(settings.redis_url),
        "ENVIRONMENT": "test",
        "LOG_JSON": "false",
        # The test settings' wait for a pooled connection (tests/serve_apps/conftest.py: 10 s, not
        # the shipped 1.5 s): under load on 2 cores the scaling test's ingress once answered 503
        # database_unavailable with the database up.
        "API_DB_POOL_TIMEOUT_S": str(settings.api_db_pool_timeout_s),
        # The node's resources whatever the machine: 2 CPUs, no GPU.
        "RAY_OVERRIDE_RESOURCES": json.dumps({"CPU": 2, "GPU": 0}),
    }


class ServeProcess:
    """`clipforge serve` with its output in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [str(EXE), "serve", *args], env=env, stdout=self._out, stderr=subprocess.STDOUT
        )
        # Process objects, not pids: `is_running()` also checks the start time, so a reused pid
        # is never mistaken for (or killed as) one of ours.
        self.seen: dict[int, psutil.Process] = {}

    def output(self) -> str:
        """Everything it printed so far."""
        return self.log.read_text(errors="replace")

    def track_children(self) -> None:
        """Remember every process it started so far (gcs_server, raylet, workers)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)

    def wait_healthy(self, port: int, timeout_s: float = 180) -> int | None:
        """The last `/health` status on `port`: 200 once it answers, or what it was when
        `timeout_s` passed or the command exited."""
        deadline = time.monotonic() + timeout_s
        status = None
        while time.monotonic() < deadline and self.proc.poll() is None:
            self.track_children()
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code
            except httpx.HTTPError:
                status = None
            if status == 200:
                break
            time.sleep(1)
        return status

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
