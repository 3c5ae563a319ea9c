"""What a stage actor's process imports as it starts: the module of its class, after Ray.

Every actor pays these imports before its first call (a worker starting, a pool growing onto a
new node), and CI starts a few hundred actors. Modules that only the driver or a rare path needs
stay out of them; `benchmarks/actor_imports.py` measures the CPU against a baseline commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clipforge.stages import STAGES
from pipelines.stages.transcribe_progress import ProgressBoard

REPO = Path(__file__).resolve().parents[2]
# module whose class an actor runs -> modules its process must not import for it: no stage
# actor talks to Redis, and only a video's speaker clustering uses scipy
# (models/speaker_clusters.py); the transcription progress board holds numbers in memory and
# only the driver writes them to the database.
_KEPT_OUT = {info.module: ("redis", "scipy") for info in STAGES} | {
    ProgressBoard.__module__: ("psycopg", "clipforge.settings", "numpy")
}


@pytest.mark.parametrize("module", sorted(_KEPT_OUT))
def test_an_actor_process_imports_only_what_its_class_needs(module: str) -> None:
    code = (
        f"import json, sys, ray, {module};"
        f" print(json.dumps(sorted(m for m in {_KEPT_OUT[module]!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
