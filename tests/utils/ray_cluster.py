"""A multi-node local Ray cluster started by `ray start` subprocesses, for tests.

Each node is a `ray start --block` process with a temp dir of its own; terminating that process
stops exactly its node's processes. Any process left behind (a worker, an agent) is found by its
temp dir in its command line and ended by pid: never `ray stop`, which stops every Ray on the
machine, the test session's own included.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.utils.servers import free_port, wait_for_port
from tests.utils.wait import wait_until

RAY = Path(sys.executable).with_name("ray")


@dataclass
class LocalCluster:
    """A running cluster: where to reach it and what was started."""

    gcs_port: int
    dashboard_port: int
    env: dict[str, str]
    temp_dirs: list[Path] = field(default_factory=list)
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        """GCS address (RAY_ADDRESS of a driver)."""
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        """Job server / state API address."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def kill_node(self, index: int) -> int:
        """SIGKILL node `index` (not the head) as a machine loss would: its `ray start` process,
        everything under it (raylet, agents, workers) and whatever else names its temp dir.
        Returns how many processes were killed."""
        assert index > 0, "the head holds the GCS: kill a worker node"
        procs: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.nodes[index].pid)
            procs.update((p.pid, p) for p in [root, *root.children(recursive=True)])
        procs.update((p.pid, p) for p in _ours([self.temp_dirs[index]]))
        for proc in procs.values():
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(list(procs.values()), timeout=10)
        self.nodes[index].wait(timeout=10)
        return len(procs)


def _node_cmd(temp_dir: Path, *, head: LocalCluster | None, num_cpus: int) -> list[str]:
    cmd = [
        str(RAY),
        "start",
        "--block",
        f"--num-cpus={num_cpus}",
        "--num-gpus=0",
        f"--object-store-memory={200 * 1024 * 1024}",
        f"--temp-dir={temp_dir}",
        # 0: the agent binds a free port itself and reports it to the GCS, as Ray's other agents
        # and the metrics exporter do by default. A port picked here is bound a minute later on a
        # busy machine, and another process may take it first; a job agent whose HTTP port fails
        # to bind stays up without taking jobs ("No available agent to submit job").
        "--dashboard-agent-listen-port=0",
        "--disable-usage-stats",
    ]
    if head is None:
        return cmd
    # Every node is on this host: Ray asks for one log monitor per host (more duplicate the logs
    # on drivers), and each polls its log folder several times a second for the test's length.
    return [*cmd, f"--address={head.address}", "--include-log-monitor=false"]


def _ours(temp_dirs: list[Path]) -> list[psutil.Process]:
    """Processes whose command line names one of the cluster's temp dirs."""
    needles = [str(d) for d in temp_dirs]
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            line = " ".join(proc.info["cmdline"] or ())
            if any(n in line for n in needles) and proc.pid != os.getpid():
                found.append(proc)
    return found


def _alive_nodes(cluster: LocalCluster) -> int:
    from ray.util.state import list_nodes

    with contextlib.suppress(Exception):
        nodes = list_nodes(address=cluster.dashboard_url, timeout=5, raise_on_missing_output=False)
        return sum(1 for n in nodes if n.state == "ALIVE")
    return 0


@contextlib.contextmanager
def local_cluster(
    env: dict[str, str],
    *,
    nodes: int = 2,
    cpus_per_node: int = 1,
    timeout_s: float = 90,
    attempts: int = 3,
) -> Iterator[LocalCluster]:
    """A head (dashboard + job server) and `nodes - 1` more raylets, all on free ports.

    A cluster one of whose `ray start` commands exits while it comes up is stopped and started
    again on other ports, up to `attempts` times. CI saw a head exit with code 1 beside two other
    test workers, its output gone with its temp dir. Its ports are picked ahead (the tests must
    know them) by binding port 0 and letting go, so another process can bind one first on a busy
    machine: a head whose dashboard port is taken exits once its GCS is up. The last try's error
    carries what each `ray start` printed.
    """
    from serve_apps.deployments.launch import PROXY_READY_ENV

    env = {k: v for k, v in env.items() if k != "RAY_ADDRESS"}
    # `python` of a job's entrypoint is the cluster's interpreter.
    env["PATH"] = f"{RAY.parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("RAY_AUTH_MODE", "disabled")
    # On SIGTERM `ray start --block` drains its node first (up to 30 s, for Serve proxies in a
    # rolling upgrade); a test's cluster has nothing to drain when it is stopped.
    env.setdefault("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "0")
    # Ray runs its worker processes (every actor) at nice 15, for a node whose other processes
    # are Ray's own. Here they share two cores with the rest of the suite at nice 0, and a node
    # loss took over 150 s to recover in CI while each stage actor got a few per cent of a core.
    env.setdefault("RAY_worker_niceness", "0")
    # Serve's proxies get longer to start than Serve's 5 s (launch.PROXY_READY_ENV).
    env = PROXY_READY_ENV | env
    for attempt in range(1, attempts + 1):
        cluster = LocalCluster(gcs_port=free_port(), dashboard_port=free_port(), env=env)
        try:
            _bring_up(cluster, nodes=nodes, cpus_per_node=cpus_per_node, timeout_s=timeout_s)
        except BaseException as exc:
            _stop(cluster)
            if not isinstance(exc, _NodeExited) or attempt == attempts:
                raise
            continue
        try:
            yield cluster
        finally:
            _stop(cluster)
        return


class _NodeExited(RuntimeError):
    """A node's `ray start` exited while the cluster came up."""


def _bring_up(cluster: LocalCluster, *, nodes: int, cpus_per_node: int, timeout_s: float) -> None:
    def exited() -> _NodeExited:
        outputs = [
            f"{'head' if i == 0 else f'node {i}'} ({d.name}) exited {p.returncode}:\n"
            + (d / "ray-start.log").read_text(errors="replace")[-2000:]
            for i, (p, d) in enumerate(zip(cluster.nodes, cluster.temp_dirs, strict=False))
            if p.poll() is not None
        ]
        return _NodeExited(f"cluster did not come up ({nodes} nodes):\n" + "\n".join(outputs))

    # Short temp dirs: Ray's socket paths must stay under the OS limit.
    head_dir = Path(tempfile.mkdtemp(prefix="cfh-", dir="/tmp"))
    cluster.temp_dirs.append(head_dir)
    head_cmd = [
        *_node_cmd(head_dir, head=None, num_cpus=cpus_per_node),
        "--head",
        f"--port={cluster.gcs_port}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={cluster.dashboard_port}",
        f"--ray-client-server-port={free_port()}",  # not 10001: clusters run side by side
    ]
    cluster.nodes.append(_start(head_cmd, cluster.env, head_dir))
    try:
        wait_for_port(cluster.gcs_port, timeout_s=timeout_s, proc=cluster.nodes[0])
    except RuntimeError as exc:  # exited before its GCS port opened
        raise exited() from exc
    for _ in range(nodes - 1):
        node_dir = Path(tempfile.mkdtemp(prefix="cfn-", dir="/tmp"))
        cluster.temp_dirs.append(node_dir)
        cmd = _node_cmd(node_dir, head=cluster, num_cpus=cpus_per_node)
        cluster.nodes.append(_start(cmd, cluster.env, node_dir))

    def up() -> bool:
        if any(p.poll() is not None for p in cluster.nodes):
            raise exited()
        return _alive_nodes(cluster) >= nodes

    wait_until(up, timeout_s=timeout_s, interval_s=0.5, what=f"{nodes} cluster nodes alive")


def add_node(cluster: LocalCluster, *, num_cpus: int = 1, timeout_s: float = 90) -> float:
    """Start one more raylet (a node an autoscaler would add); returns when it is alive, as
    `time.monotonic()`."""
    alive = _alive_nodes(cluster)
    node_dir = Path(tempfile.mkdtemp(prefix="cfn-", dir="/tmp"))
    cluster.temp_dirs.append(node_dir)
    cmd = _node_cmd(node_dir, head=cluster, num_cpus=num_cpus)
    cluster.nodes.append(_start(cmd, cluster.env, node_dir))

    def joined() -> bool:
        assert cluster.nodes[-1].poll() is None, f"the added node exited: {cmd}"
        return _alive_nodes(cluster) > alive

    wait_until(joined, timeout_s=timeout_s, interval_s=0.2, what="the added node alive")
    return time.monotonic()


def _start(cmd: list[str], env: dict[str, str], temp_dir: Path) -> subprocess.Popen[bytes]:
    log = (temp_dir / "ray-start.log").open("wb")
    try:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def _stop(cluster: LocalCluster) -> None:
    """Stop the nodes, all at once, then end by pid whatever of theirs is left.

    One after another, each node's wait added up; nothing of a test's cluster outlives it
    either way.
    """
    running = [proc for proc in cluster.nodes if proc.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its node's processes
    deadline = time.monotonic() + 15
    for proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    left = _ours(cluster.temp_dirs)
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(left, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    for temp_dir in cluster.temp_dirs:
        shutil.rmtree(temp_dir, ignore_errors=True)
