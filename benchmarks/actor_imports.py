"""CPU a stage actor spends importing its stage's module as it starts, against a baseline commit,
side by side in one run.

A Ray actor's process imports the module that defines its class before it can take a call: the
pool's first job on a new actor (a worker starting, a pool growing onto a new node) waits for it,
and each of CI's few hundred actors pays it. Each measurement is a fresh interpreter that imports
Ray first (as Ray's worker process has), then the stage's module, and reports the CPU of the
second import. The baseline is the same tree at `--baseline` (a git ref), extracted with
`git archive`; a first, unmeasured pass writes both trees' bytecode; the two trees alternate for `--rounds` rounds so that a change in the machine's
load falls on both. The load average is printed with the table.

Usage: python -m benchmarks.actor_imports [--baseline HEAD] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from clipforge.stages import STAGES
from pipelines.stages.transcribe_progress import ProgressBoard

REPO = Path(__file__).resolve().parents[1]
# The modules that define the stage actors (each beside its stage's driver, `StageInfo.module`)
# and the transcription progress board (an actor of its own), as their processes import them.
MODULES = (*(info.module for info in STAGES), ProgressBoard.__module__)
_CHILD = """
import json, sys, time
import ray  # already loaded in an actor's process before its class's module
start = time.process_time()
__import__(sys.argv[1])
print(json.dumps({"cpu_s": time.process_time() - start, "modules": len(sys.modules)}))
"""


def _extract(ref: str, dest: Path) -> None:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref], cwd=REPO, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")


def _measure(tree: Path, module: str) -> dict[str, float]:
    # Bytecode written and read by both trees alike (some machines set PYTHONDONTWRITEBYTECODE:
    # the extracted baseline would then compile its modules in every measurement).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(tree)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, module],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"importing {module} in {tree} failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD", help="git ref to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cf-baseline-") as tmp:
        baseline = Path(tmp)
        _extract(args.baseline, baseline)
        trees = {f"baseline ({args.baseline})": baseline, "this tree": REPO}
        samples: dict[tuple[str, str], list[float]] = {}
        modules: dict[tuple[str, str], float] = {}
        for module in MODULES:  # a first import compiles each tree's bytecode: not measured
            for tree in trees.values():
                _measure(tree, module)
        for _ in range(args.rounds):
            for module in MODULES:
                for name, tree in trees.items():
                    found = _measure(tree, module)
                    samples.setdefault((name, module), []).append(found["cpu_s"])
                    modules[(name, module)] = found["modules"]
    names = list(trees)
    print(f"load average {os.getloadavg()[0]:.2f}; median of {args.rounds} rounds, CPU s")
    print(f"{'module':38} " + " ".join(f"{n:>24}" for n in names) + f" {'change':>8}")
    for module in MODULES:
        base, new = (statistics.median(samples[(n, module)]) for n in names)
        cells = " ".join(
            f"{statistics.median(samples[(n, module)]):>9.3f} ({modules[(n, module)]:>5.0f} mod)"
            + " " * 2
            for n in names
        )
        print(f"{module:38} {cells} {100 * (new - base) / max(base, 1e-3):>+7.0f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
