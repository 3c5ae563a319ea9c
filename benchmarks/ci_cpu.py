"""Where a test run's CPU goes: the CPU of every process on the machine, charged to the test file
its pytest worker was running, while a command (the whole CI, or one pytest call) runs.

On the 2-core CI machine pytest's wall time follows the suite's CPU (the machine is over 90 %
busy from start to end, `docs/ci.md`), so a shorter run needs less CPU, and this says where it is.
Four times a second it reads every process's CPU time from /proc and charges the increase to the
test that the process's pytest-xdist worker (its nearest ancestor that is one) runs at that moment.
A stage actor or Serve replica of a worker's session Ray is charged to that worker's current test;
a process outside every worker (install, lint, media build, the machine's own) is "outside pytest".
The workers say which test they run through this same module, loaded into pytest as a plugin
(`-p benchmarks.ci_cpu`, set in PYTEST_ADDOPTS). Stdlib only: it starts before the venv exists.

Usage (from the repository root; a clean clone for CI's figures):
    python3 -m benchmarks.ci_cpu [--out ledger.json] [--top 40] -- env CI=true bash .ci/run
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_HZ = os.sysconf("SC_CLK_TCK")
_STATE_ENV = "CLIPFORGE_CI_CPU_DIR"  # where each worker writes the test it runs
_OUTSIDE, _BETWEEN = "(outside pytest)", "(a worker, not in a test: collection, fixtures' end)"


# --- the plugin side: runs inside each pytest-xdist worker -----------------------------------


def _say(text: str) -> None:
    folder = os.environ.get(_STATE_ENV)
    if not folder or not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller runs these hooks too, for every worker's tests
    path = Path(folder) / str(os.getpid())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # the sampler never reads half a name


def pytest_configure(config: object) -> None:
    _say(_BETWEEN)  # from here on the worker is known: its collection counts as its own


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _say(nodeid)


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    _say(_BETWEEN)


# --- the sampler side ------------------------------------------------------------------------


def _busy_s() -> float:
    """The machine's busy CPU seconds since boot (everything but idle and iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _HZ


def _processes() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds so far) of every process now."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone since the listing
        fields = stat[stat.rfind(")") + 2 :].split()  # the name may hold spaces and parentheses
        found[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _HZ)
    return found


def _kind(pid: int, workers: set[int]) -> str:
    """What a process is: Ray's by its command line (its workers rename themselves "ray::..."),
    any other by its program's file name (raylet, gcs_server, postgres, chromium, ffmpeg...)."""
    if pid in workers:
        return "pytest workers themselves"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "(gone before it was read)"
    if "ray::" in cmd:
        return "Ray workers and actors"
    try:
        program = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:  # another user's process without the rights to read it
        program = os.path.basename(cmd.split(" ", 1)[0]) or "(unknown)"
    if program.startswith("python"):
        if "/ray/" in cmd:
            return "Ray's agents, log monitors, dashboards (Python)"
        return "other Python: CLI commands, scripts, kernels"
    return program


class Ledger:
    """CPU seconds by test id and by kind of process."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.by_test: dict[str, float] = collections.defaultdict(float)
        self.by_kind: dict[str, float] = collections.defaultdict(float)
        self._last = {pid: cpu for pid, (_, cpu) in _processes().items()}  # not charged
        # pid -> the worker it was first seen under. Processes that outlive their parent (the
        # raylet and GCS of `ray start`, whose command exits at once) are reparented to init,
        # and stay charged to the worker that started them.
        self._owner: dict[int, int] = {}
        self._busy0 = _busy_s()
        self.busy = 0.0

    def _running(self) -> dict[int, str]:
        running = {}
        for path in self.state_dir.iterdir():
            if path.name.isdigit():
                try:
                    running[int(path.name)] = path.read_text()
                except OSError:
                    continue
        return running

    def sample(self) -> None:
        running = self._running()
        workers = set(running)
        procs = _processes()
        for pid, (_, cpu) in procs.items():
            owner = self._owner_of(pid, procs, workers)
            # A process first seen now is charged all its CPU: it started since the last sample.
            delta = cpu - self._last.get(pid, 0.0)
            self._last[pid] = cpu
            if delta <= 0:
                continue
            self.by_test[running.get(owner, _OUTSIDE)] += delta
            self.by_kind[_kind(pid, workers)] += delta
        for pid in set(self._last) - set(procs):
            del self._last[pid]
            self._owner.pop(pid, None)
        self.busy = _busy_s() - self._busy0

    def _owner_of(self, pid: int, procs: dict[int, tuple[int, float]], workers: set[int]) -> int:
        """The pytest worker `pid` descends from (0 for none): its nearest ancestor that is one,
        or that was first seen under one."""
        ancestor = pid
        for _ in range(64):
            if ancestor in workers or ancestor in self._owner:
                owner = ancestor if ancestor in workers else self._owner[ancestor]
                self._owner[pid] = owner
                return owner
            ancestor = procs.get(ancestor, (0, 0.0))[0]
            if ancestor <= 1:
                break
        return 0

    def by_file(self) -> dict[str, float]:
        files: dict[str, float] = collections.defaultdict(float)
        for test, cpu in self.by_test.items():
            files[test.split("::")[0]] += cpu
        return files


def _largest_first(cpu: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(cpu.items(), key=lambda item: -item[1])


def _report(ledger: Ledger, wall_s: float, top: int) -> None:
    files = ledger.by_file()
    sampled = sum(files.values())
    tests = sum(v for k, v in files.items() if k.startswith("tests/"))
    print(f"wall {wall_s:.0f} s; machine busy {ledger.busy:.0f} CPU s; charged {sampled:.0f}")
    print(f"tests {tests:.0f} CPU s in {sum(k.startswith('tests/') for k in files)} files")
    print("\n| file | CPU s | share of tests | running share |\n|---|---|---|---|")
    running = 0.0
    for name, cpu in _largest_first(files):
        if not name.startswith("tests/"):
            continue
        running += cpu
        print(f"| {name} | {cpu:.1f} | {cpu / tests:.1%} | {running / tests:.1%} |")
        top -= 1
        if top == 0:
            break
    print("\n| not a test | CPU s |\n|---|---|")
    for name in (_OUTSIDE, _BETWEEN):
        print(f"| {name} | {files.get(name, 0.0):.1f} |")
    print("\n| kind of process | CPU s |\n|---|---|")
    for kind, cpu in _largest_first(ledger.by_kind):
        print(f"| {kind} | {cpu:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the ledger by test id here (JSON)")
    parser.add_argument("--top", type=int, default=40, help="files in the table")
    parser.add_argument("--interval-s", type=float, default=0.25)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    with tempfile.TemporaryDirectory(prefix="ci-cpu-") as state:
        root = str(Path(__file__).resolve().parents[1])
        env = os.environ | {
            _STATE_ENV: state,
            "PYTEST_ADDOPTS": f"{os.environ.get('PYTEST_ADDOPTS', '')} -p benchmarks.ci_cpu",
            # The workers import this module; the repository may not be on their path otherwise.
            "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
        }
        ledger, done = Ledger(Path(state)), threading.Event()

        def sample() -> None:
            while not done.wait(args.interval_s):
                ledger.sample()

        sampler = threading.Thread(target=sample, daemon=True)
        started = time.monotonic()
        sampler.start()
        code = subprocess.call(command, env=env)
        done.set()
        sampler.join()
        ledger.sample()
        wall_s = time.monotonic() - started
    _report(ledger, wall_s, args.top)
    if args.out:
        args.out.write_text(json.dumps({"busy": ledger.busy, "tests": ledger.by_test}, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main())
