"""Start real servers (S3-compatible, Redis, Postgres) for tests when none is configured."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.utils.wait import wait_until


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def app_in_thread(app: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn over real HTTP from a thread of this process, on a free
    loopback port (the browser tests' server: `create_app` as `clipforge api` serves it)."""
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "uvicorn exited"
        return bool(server.started)

    wait_until(started, timeout_s=30, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_for_port(
    port: int, *, timeout_s: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout_s}s")


@contextlib.contextmanager
def nanio_server(data_dir: Path, *, access_key: str, secret_key: str) -> Iterator[str]:
    """Run the `nanio` S3-compatible server (real HTTP, SigV4, presigned expiry); yields its URL."""
    port = free_port()
    env = os.environ | {"NANIO_ACCESS_KEY": access_key, "NANIO_SECRET_KEY": secret_key}
    exe = Path(sys.executable).with_name("nanio")
    cmd = [
        str(exe),
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run a private `redis-server` (no persistence); yields its URL and the process."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc=proc)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _nanio_command(data_dir: Path, port: int) -> list[str]:
    return [
        str(Path(sys.executable).with_name("nanio")),
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


class NanioServer:
    """A test-owned `nanio` on a fixed port that the test may stop and start again (an outage)."""

    def __init__(self, data_dir: Path, *, access_key: str, secret_key: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._data_dir = data_dir
        self._env = os.environ | {"NANIO_ACCESS_KEY": access_key, "NANIO_SECRET_KEY": secret_key}
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the server on its port and wait until it accepts connections."""
        self._proc = subprocess.Popen(
            _nanio_command(self._data_dir, self.port),
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self._proc)

    def stop(self) -> None:
        """Stop the server; its port refuses connections until `start`."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        self._proc = None


class PostgresServer:
    """A test-owned Postgres (the binaries shipped in the `pgserver` wheel) on a loopback port.

    Unlike the shared server of the test session, the test may `stop` it (fast shutdown: open
    sessions are terminated, new connections refused) and `start` it again on the same port.
    As root, Postgres runs as the unprivileged `pgserver` user, as `pgserver` itself does.
    """

    def __init__(self, *, initdb: bool = True) -> None:
        """`initdb=False` leaves `pgdata` absent, for a data directory made another way."""
        import pgserver
        from pgserver.utils import ensure_user_exists

        self._bin = Path(pgserver.__file__).parent / "pginstall" / "bin"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # Under /tmp (not pytest's 0700 tmp dirs), so the unprivileged user can reach it.
        self.root = Path(tempfile.mkdtemp(prefix="cf-owned-pg-"))
        self.pgdata = self.root / "data"
        self._user: str | None = None
        if os.geteuid() == 0:
            entry = ensure_user_exists("pgserver")
            assert entry is not None
            self._user = "pgserver"
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        if initdb:
            self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-N")
        self._proc: subprocess.Popen[bytes] | None = None

    def _run(self, exe: str, *args: str) -> None:
        subprocess.run(
            [str(self._bin / exe), *args],
            check=True,
            user=self._user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def start(self, *, timeout_s: float = 30.0) -> None:
        """Start the server and wait until it accepts sessions."""
        import psycopg

        self._proc = subprocess.Popen(
            [
                str(self._bin / "postgres"),
                "-D",
                str(self.pgdata),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.root),
                # A throwaway server: durability costs time and buys nothing here.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            user=self._user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited with code {self._proc.returncode}")
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown: sessions are terminated, then the port refuses connections."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            self._proc.wait(timeout=30)
        self._proc = None

    def close(self) -> None:
        """Stop the server and delete its data."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class TcpProxy:
    """A loopback TCP proxy to `target_port` that a test can partition and heal.

    `partition()` behaves like a network partition, not a refused connection: bytes in either
    direction are silently dropped and new connections are accepted but never answered, so
    clients see timeouts. `heal()` drops the connections that lived through the partition
    (their streams lost data) and proxies new ones normally again.
    """

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._partitioned = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True).start()

    def partition(self) -> None:
        """Start dropping all traffic."""
        self._partitioned.set()

    def heal(self) -> None:
        """Close the connections that saw the partition; proxy new ones again."""
        with self._lock:
            stale, self._sockets = self._sockets, []
        self._partitioned.clear()
        for sock in stale:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        """Stop proxying and close every socket."""
        self._closed.set()
        self.heal()
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._sockets.append(client)
            if self._partitioned.is_set():
                continue  # accepted, never answered: the client times out
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.append(upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(None)
        try:
            while data := src.recv(65536):
                if not self._partitioned.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
