"""Fixtures of the cluster tests: Prometheus binaries, and live processes to scrape.

promtool and prometheus come from Debian's `prometheus` package, amtool and the Alertmanager
from `prometheus-alertmanager`; a missing binary fails the test (it is part of the CI install),
it never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.servers import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"


def _binary(name: str, package: str = "prometheus") -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install -y {package} (Debian package)")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool."""
    return _binary("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """Path of the Prometheus server."""
    return _binary("prometheus")


@pytest.fixture(scope="session")
def amtool() -> str:
    """Path of amtool."""
    return _binary("amtool", "prometheus-alertmanager")


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    """Path of the Alertmanager server (Debian names it prometheus-alertmanager)."""
    if shutil.which("prometheus-alertmanager") is None and shutil.which("alertmanager"):
        return _binary("alertmanager", "prometheus-alertmanager")
    return _binary("prometheus-alertmanager", "prometheus-alertmanager")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def live_api(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`clipforge api` on a free port against the test database and Redis; yields its URL."""
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ENVIRONMENT": "test",
        "DATA_DIR": str(tmp_path_factory.mktemp("api-data")),
        "LOG_LEVEL": "WARNING",
    }
    exe = Path(sys.executable).with_name("clipforge")
    proc = subprocess.Popen(
        [str(exe), "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout_s=60, proc=proc)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def live_worker(database_url: str) -> Iterator[str]:
    """The worker metrics endpoint (tests/cluster/worker_probe.py); yields host:port."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.cluster.worker_probe",
            "--port",
            str(port),
            "--database-url",
            database_url,
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout_s=30, proc=proc)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)
