"""Every command that starts or joins the embedded Postgres leaves it on SIGTERM and SIGINT.

Real `clipforge api`, `clipforge worker` and `clipforge process` processes on the embedded
default (no DATABASE_URL): the first one starts the server, the next joins it. Stopping one while
another still uses the server must leave it running; stopping the last one must stop it, with no
postgres (or anything else of the run) left behind with parent 1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.utils.wait import wait_until

_REPO = Path(__file__).resolve().parents[2]
_CLI = str(_REPO / ".venv/bin/clipforge")
_START_S = 180  # Ray's start on a loaded 2-core machine; a good start takes 10-40 s


@pytest.fixture()
def short_tmp() -> Iterator[Path]:
    """A short temp folder: Ray's socket paths under it must stay below 108 bytes."""
    with tempfile.TemporaryDirectory(prefix="cf-", dir="/tmp") as tmp:
        (Path(tmp) / "home").mkdir()
        yield Path(tmp)


def _env(tmp: Path) -> dict[str, str]:
    drop = {"DATABASE_URL", "REDIS_URL", "S3_ENDPOINT_URL", "S3_BUCKET", "CDN_BASE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in drop | {"RAY_ADDRESS"}}
    return env | {
        "DATA_DIR": str(tmp / "data"),
        "RAY_TMPDIR": str(tmp / "ray"),  # tells this run's Ray processes apart from others
        "HOME": str(tmp / "home"),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    wait_until(condition, timeout_s=timeout_s, interval_s=0.2, what=what)


class _Command:
    """A CLI process with its stderr (JSON logs) in a file."""

    def __init__(self, tmp: Path, name: str, *args: str, ray_address: str | None = None) -> None:
        self.log = tmp / f"{name}.log"
        env = _env(tmp) | ({"RAY_ADDRESS": ray_address} if ray_address else {})
        self.proc = subprocess.Popen(
            [_CLI, *args],
            env=env,
            cwd=_REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )

    def logged(self, text: str) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        return text in self.log.read_text()

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def _postmaster(tmp: Path) -> psutil.Process | None:
    """The embedded server's postmaster, if running."""
    pid_file = tmp / "data" / "pgdata" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        proc = psutil.Process(pid)
    except (FileNotFoundError, IndexError, ValueError, psutil.NoSuchProcess):
        return None
    return proc if proc.is_running() and proc.name() == "postgres" else None


def _ours_running(tmp: Path) -> list[str]:
    """Processes whose command line names this run's folders (its Postgres, its Ray)."""
    found = []
    for proc in psutil.process_iter(["pid", "ppid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(tmp) in cmdline and proc.info["pid"] != os.getpid():
            found.append(f"{proc.info['pid']} (parent {proc.info['ppid']}): {cmdline[:160]}")
    return found


def _assert_all_gone(tmp: Path) -> None:
    # Ray's last workers may take a moment to see their raylet go.
    wait_until(
        lambda: not _ours_running(tmp),
        timeout_s=20,
        interval_s=0.2,
        what=lambda: _ours_running(tmp),
    )
    assert _postmaster(tmp) is None
    assert not (tmp / "data" / "pgdata" / "postmaster.pid").exists()  # a clean shutdown


def _exit_status(sig: signal.Signals) -> int:
    """SIGTERM ends the process by the signal itself (after it left the server); SIGINT with
    130, as after Ctrl-C."""
    return 130 if sig == signal.SIGINT else -sig


def _start_api(tmp: Path, name: str) -> _Command:
    port = _free_port()
    api = _Command(tmp, name, "api", "--port", str(port))
    _wait(lambda: api.logged("Uvicorn running"), _START_S, f"{name} to listen")
    return api


def _start_worker(tmp: Path) -> _Command:
    import ray

    # On the session's Ray: a Ray of its own would only add its start-up to the test.
    address = ray.get_runtime_context().gcs_address
    worker = _Command(tmp, "worker", "worker", "--metrics-port", "0", ray_address=address)
    _wait(lambda: worker.logged("worker started"), _START_S, "the worker to start")
    return worker


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_api_alone_stops_the_server_it_started(short_tmp: Path, sig: signal.Signals) -> None:
    api = _start_api(short_tmp, "api")
    assert _postmaster(short_tmp) is not None
    assert api.stop(sig) == _exit_status(sig)
    _assert_all_gone(short_tmp)


@pytest.mark.parametrize(
    ("first_sig", "last_sig"),
    [(signal.SIGTERM, signal.SIGINT), (signal.SIGINT, signal.SIGTERM)],
    ids=["api-sigterm-worker-sigint", "api-sigint-worker-sigterm"],
)
def test_the_last_of_api_and_worker_stops_the_server(
    short_tmp: Path, ray_local: None, first_sig: signal.Signals, last_sig: signal.Signals
) -> None:
    # The worker starts the server when it goes first, the API when it does: one case each.
    worker_first = first_sig == signal.SIGINT
    worker = _start_worker(short_tmp) if worker_first else None
    api = _start_api(short_tmp, "api")
    worker = worker or _start_worker(short_tmp)
    server = _postmaster(short_tmp)
    assert server is not None
    assert api.stop(first_sig) == _exit_status(first_sig)
    # The worker still uses the server: it stays, and the worker keeps working on it.
    time.sleep(1.0)  # the test: nothing stops it meanwhile (a condition cannot show an absence)
    assert _postmaster(short_tmp) == server
    assert worker.proc.poll() is None
    assert worker.stop(last_sig) == 0  # the worker's own graceful stop
    assert "stopped embedded postgres" in worker.log.read_text()
    _assert_all_gone(short_tmp)


def test_process_interrupted_stops_the_server(short_tmp: Path, test_media: dict[str, Path]) -> None:
    # SIGTERM mid-run is tests/pipelines/test_process_terminal.py's; this is Ctrl-C's signal.
    out = short_tmp / "out"
    run = _Command(
        short_tmp, "process", "process", str(test_media["speech_short"]), "--out", str(out)
    )
    log = out / "clipforge.log"
    _wait(
        lambda: log.exists() and "Started a local Ray" in log.read_text(),
        _START_S,
        "Ray and the embedded Postgres to be up",
    )
    assert _postmaster(short_tmp) is not None
    assert run.stop(signal.SIGINT) == 130
    _assert_all_gone(short_tmp)
