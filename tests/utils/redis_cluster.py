"""A real 3-master Redis Cluster on loopback for tests (Debian's `redis-server` and `redis-cli`).

Each master is a `redis-server --cluster-enabled yes` on a free port (its cluster bus listens on
port + 10000, so that one must be free too); `redis-cli --cluster create` assigns the 16384 slots.
`cluster-require-full-coverage no`, as docs/operations.md recommends: when a master is lost the
other masters keep serving their slots. No replicas: a killed master's slots stay down until it
is started again on the same port with the same node config (`restart`), which is the recovery
the tests check.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.utils.servers import wait_for_port
from tests.utils.wait import wait_until

_BUS_OFFSET = 10_000


def _free_cluster_port() -> int:
    """A free loopback port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + _BUS_OFFSET > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + _BUS_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisCluster:
    """Three masters in `workdir`; `url` lists them all as seed nodes (REDIS_CLUSTER_URL)."""

    def __init__(self, workdir: Path, *, masters: int = 3) -> None:
        self.workdir = workdir
        self.ports = [_free_cluster_port() for _ in range(masters)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        exe = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        if exe is None or cli is None:
            raise RuntimeError(
                "redis-server/redis-cli not installed (apt-get install redis-server)"
            )
        self._exe, self._cli = exe, cli

    @property
    def url(self) -> str:
        """Comma-separated seed URLs, the REDIS_CLUSTER_URL format."""
        return ",".join(f"redis://127.0.0.1:{p}" for p in self.ports)

    def start(self, port: int) -> None:
        """Start (or restart, with its saved node config) the master on `port`."""
        node_dir = self.workdir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        cmd = [self._exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir)]
        cmd += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        cmd += ["--cluster-node-timeout", "1000", "--cluster-require-full-coverage", "no"]
        cmd += ["--save", "", "--appendonly", "no", "--logfile", str(node_dir / "redis.log")]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs[port] = proc
        wait_for_port(port, proc=proc)

    def create(self) -> None:
        """Start every master and join them into one cluster covering all slots."""
        for port in self.ports:
            self.start(port)
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            [self._cli, "--cluster", "create", *nodes, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.wait_ok()

    def cli(self, port: int, *args: str) -> str:
        """`redis-cli -p port args...` output (stripped)."""
        done = subprocess.run(
            [self._cli, "-p", str(port), *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout.strip()

    def wait_ok(self, timeout_s: float = 20.0) -> None:
        """Block until every running master reports `cluster_state:ok` with all slots assigned."""

        def ok() -> bool:
            infos = [self.cli(p, "cluster", "info") for p in self.ports if self.alive(p)]
            return bool(infos) and all(
                "cluster_state:ok" in i and "cluster_slots_ok:16384" in i for i in infos
            )

        wait_until(ok, timeout_s=timeout_s, interval_s=0.1, what="the cluster to report ok")

    def alive(self, port: int) -> bool:
        """Whether the master on `port` is running."""
        proc = self.procs.get(port)
        return proc is not None and proc.poll() is None

    def port_of(self, key: str) -> int:
        """The port of the master serving `key` now."""
        slot = int(
            self.cli(next(p for p in self.ports if self.alive(p)), "cluster", "keyslot", key)
        )
        for port in self.ports:
            if not self.alive(port):
                continue
            # CLUSTER SHARDS is newer than Debian 12's 7.0; CLUSTER SLOTS works everywhere.
            for line in self._slot_ranges(port):
                start, end, owner = line
                if start <= slot <= end:
                    return owner
        raise LookupError(f"no master serves slot {slot}")

    def _slot_ranges(self, port: int) -> list[tuple[int, int, int]]:
        ranges = []
        for line in self.cli(port, "cluster", "nodes").splitlines():
            fields = line.split()
            owner = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            for part in fields[8:]:
                if part.startswith("["):
                    continue  # a slot being migrated
                start, _, end = part.partition("-")
                ranges.append((int(start), int(end or start), owner))
        return ranges

    def kill(self, port: int) -> None:
        """SIGKILL the master on `port` (no shutdown, no save: a crash)."""
        proc = self.procs[port]
        proc.kill()
        proc.wait(timeout=10)

    def pause(self, port: int) -> None:
        """SIGSTOP the master on `port`: connections open but nothing answers (a hung host)."""
        self.procs[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        """SIGCONT a paused master."""
        self.procs[port].send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop every node."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)


@contextlib.contextmanager
def redis_cluster(workdir: Path) -> Iterator[RedisCluster]:
    """A started 3-master cluster in `workdir`, stopped on exit."""
    cluster = RedisCluster(workdir)
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.close()
