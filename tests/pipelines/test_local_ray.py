"""The private Ray of `clipforge process` (`pipelines.local.one_video.local_ray`): signals wait
while Ray starts, and Ray's own processes do not inherit that wait."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent(
    """
    import json, signal
    import psutil
    from pipelines.local.one_video import local_ray

    def blocked(pid):
        with open(f"/proc/{pid}/status") as status:
            line = next(x for x in status if x.startswith("SigBlk:"))
        mask = int(line.split()[1], 16)
        return [s.name for s in (signal.SIGTERM, signal.SIGHUP) if mask >> (s - 1) & 1]

    signal.signal(signal.SIGTERM, lambda *_: None)  # the CLI's own handler, as `process` sets
    with local_ray():
        children = psutil.Process().children(recursive=True)
        found = [[p.name(), blocked(p.pid)] for p in children]  # names repeat (python)
        print(json.dumps({"children": found, "driver": blocked("self")}))
    """
)


def test_ray_processes_started_by_process_take_sigterm(tmp_path: Path) -> None:
    """ray.shutdown ends Ray's processes with SIGTERM and waits 1 s for each that ignores it:
    with SIGTERM still blocked in them (inherited from the start-up), a run's shut-down took 5 s
    instead of 1 s."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {"PYTHONPATH": str(_REPO), "RAY_AUTH_MODE": "disabled", "HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert {"gcs_server", "raylet"} <= {name for name, _ in seen["children"]}, seen
    assert all(blocked == [] for _, blocked in seen["children"]), seen
    assert seen["driver"] == []  # unblocked again once Ray has started
