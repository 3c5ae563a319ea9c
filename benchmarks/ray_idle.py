"""CPU of an idle local Ray, with Ray's defaults and with the test suite's quiet settings
(`tests/utils/ray_env.py` `RAY_QUIET_ENV`), side by side in one run.

Each configuration runs in a fresh interpreter (Ray reads these variables when it starts): it
starts Ray as the test session does (`ray.init(num_cpus=2, include_dashboard=False)`), places one
small actor, waits for start-up to settle, then sums the CPU time of the driver and every process
Ray started over `--seconds`. Configurations alternate for `--rounds` rounds, so a change in the
machine's load falls on both. The load average is printed with the table.

Usage: python -m benchmarks.ray_idle [--seconds 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from tests.utils.ray_env import RAY_QUIET_ENV  # the suite's own settings: no second copy

_CHILD = """
import json, sys, time
import psutil, ray

ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024 * 1024,
         log_to_driver=False, configure_logging=False)

@ray.remote(num_cpus=0.25)
class Idle:
    def ping(self) -> int:
        return 1

actor = Idle.remote()
ray.get(actor.ping.remote())
time.sleep(5)  # start-up's own work settles
me = psutil.Process()

def cpu() -> tuple[float, int]:
    total, count = 0.0, 0
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
        count += 1
    return total, count

started, _ = cpu()
time.sleep(float(sys.argv[1]))
ended, processes = cpu()
print(json.dumps({"cpu_s": ended - started, "startup_cpu_s": started, "processes": processes}))
ray.shutdown()
"""


def measure(extra: dict[str, str], seconds: float) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") or k == "RAY_AUTH_MODE"}
    env.setdefault("RAY_AUTH_MODE", "disabled")
    command = [sys.executable, "-c", _CHILD, str(seconds)]
    done = subprocess.run(
        command,
        env=env | extra,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=seconds + 120,  # start-up, the wait and shutdown; a hung Ray fails the run
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:2])} ... failed:\n{done.stderr[-2000:]}")
    last_line = done.stdout.strip().splitlines()[-1]
    return {k: float(v) for k, v in json.loads(last_line).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    configs = {"Ray defaults": {}, "tests' RAY_QUIET_ENV": RAY_QUIET_ENV}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, extra in configs.items():
            runs[name].append(measure(extra, args.seconds))
    print(f"idle local Ray, {args.seconds:.0f} s x {args.rounds} rounds; load {os.getloadavg()}")
    print(f"{'configuration':24} {'idle CPU s/min':>15} {'start-up CPU s':>15} {'processes':>10}")
    for name, results in runs.items():
        per_min = statistics.median(r["cpu_s"] * 60 / args.seconds for r in results)
        startup = statistics.median(r["startup_cpu_s"] for r in results)
        procs = statistics.median(r["processes"] for r in results)
        print(f"{name:24} {per_min:15.2f} {startup:15.1f} {procs:10.0f}")


if __name__ == "__main__":
    main()
