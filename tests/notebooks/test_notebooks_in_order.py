"""The four notebooks, in order, as a new user runs them: on the embedded default (no
DATABASE_URL, no RAY_ADDRESS, no S3: each starts what it needs) with one fresh DATA_DIR, so each
must leave nothing that breaks the next (04_backfill re-scores every video the earlier ones
kept). It runs in CI, first of all files (tests/conftest.py `_HEAVY_FILES`), since it is the
longest: 14 minutes on the 2-core machine at load 70-80 (01: 289 s, 02: 141 s, 03: 185 s, 04:
200 s), a few minutes when the machine runs only the suite."""

from __future__ import annotations

import os
import time
from pathlib import Path
from unittest import mock

import psutil
import pytest
import yaml

from pipelines.config import load_pipeline_config
from tests.notebooks.conftest import run_notebook

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
ORDER = (
    "01_quickstart.ipynb",
    "02_tune_highlights.ipynb",
    "03_api_client.ipynb",
    "04_backfill.ipynb",
)
# What would point the notebooks at the suite's servers instead of their embedded defaults.
_SERVERS = ("DATABASE_URL", "RAY_ADDRESS", "REDIS_URL", "S3_ENDPOINT_URL", "S3_BUCKET")


def test_notebooks_run_in_order_on_the_embedded_default(tmp_path: Path) -> None:
    config = load_pipeline_config(
        worker__idle_poll_s=0.2,
        transcribe__asr_actors_max=1,
        detect__top_k=1,
        export__short_side=240,
    )
    config_path = tmp_path / "pipeline.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True)))
    data_dir = tmp_path / "data"
    env = {
        "DATA_DIR": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        "ENVIRONMENT": "test",
        "CLIPFORGE_PIPELINE_CONFIG": str(config_path),
        "CLIPFORGE_NB_TOP_K": "1",
        "CLIPFORGE_TUNED_SCORER": str(tmp_path / "highlight-tuned.yaml"),
    }
    took = {}
    with mock.patch.dict(os.environ):
        for name in _SERVERS:
            os.environ.pop(name, None)
        for name in ORDER:
            started = time.monotonic()
            try:
                run_notebook(name, env, tmp_path, timeout_s=600)
            finally:
                took[name] = round(time.monotonic() - started)
                print(f"notebooks in order, seconds each: {took}")
    # Each notebook's kernel stopped the embedded Postgres it started.
    left = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(data_dir) in " ".join(p.info["cmdline"] or []) and p.pid != os.getpid()
    ]
    for proc in left:
        proc.kill()
    assert not left, [p.info["cmdline"] for p in left]
