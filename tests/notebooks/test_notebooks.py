"""The four notebooks, run once, in order, as a new user runs them: on the embedded default (no
DATABASE_URL, no RAY_ADDRESS, no S3: each starts what it needs) with one fresh DATA_DIR, so each
must leave nothing that breaks the next (04_backfill re-scores every video the earlier ones
kept). Each notebook ends with its own assertions; the tests here check what lies between them:
notebooks stored without outputs, the tuned config 02 saves is the shipped one, and no kernel
leaves a process behind.

The notebooks ran twice before (here against the suite's servers, and in order on the embedded
default): the same code with other settings, for about nine minutes of CI. Once is enough: the
settings that point them at servers are tested with the rest of the suite, and the queue
engine's re-scoring (04 uses Ray Data) in tests/pipelines/test_backfill.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import nbformat
import psutil
import pytest

from models.highlight_config import ScorerConfig
from pipelines.config import load_pipeline_config
from tests.notebooks.conftest import NOTEBOOKS, run_notebook

ORDER = (
    "01_quickstart.ipynb",
    "02_tune_highlights.ipynb",
    "03_api_client.ipynb",
    "04_backfill.ipynb",
)
REPO = NOTEBOOKS.parent
# What would point the notebooks at the suite's servers instead of their embedded defaults.
_SERVERS = ("DATABASE_URL", "RAY_ADDRESS", "REDIS_URL", "S3_ENDPOINT_URL", "S3_BUCKET")


@pytest.fixture(scope="module")
def in_order(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The four notebooks run in order on the embedded default; the environment they had.

    It runs first of all files in CI (tests/conftest.py `_HEAVY_FILES`), being the longest.
    """
    root = tmp_path_factory.mktemp("notebooks")
    # No speaker turns: no notebook reads them, and their voice embeddings cost more CPU than
    # ASR (tests/pipelines/conftest.py `pipeline_config`, where they are tested instead).
    config = load_pipeline_config(
        transcribe__speaker_turns=False,
        worker__idle_poll_s=0.2,
        transcribe__asr_actors=1,
        detect__top_k=1,
        export__short_side=240,
    )
    config_path = config.save(root / "pipeline.yaml")
    env = {
        "DATA_DIR": str(root / "data"),
        "HF_HUB_OFFLINE": "1",
        "ENVIRONMENT": "test",
        "CLIPFORGE_PIPELINE_CONFIG": str(config_path),
        "CLIPFORGE_NB_TOP_K": "1",
        "CLIPFORGE_TUNED_SCORER": str(root / "highlight-tuned.yaml"),
    }
    took = {}
    with mock.patch.dict(os.environ):
        for name in _SERVERS:
            os.environ.pop(name, None)
        for name in ORDER:
            started = time.monotonic()
            try:
                run_notebook(name, env, root, timeout_s=600)
            finally:
                took[name] = round(time.monotonic() - started)
                print(f"notebooks in order, seconds each: {took}")
    yield env


@pytest.mark.parametrize("name", ORDER)
def test_stored_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert nb.cells[-1].cell_type == "code" and "assert" in nb.cells[-1].source
    assert "widgets" not in nb.metadata


def test_labelled_set_is_what_its_script_builds(test_media: dict[str, Path]) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_labelled_windows", NOTEBOOKS / "data" / "make_labelled_windows.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = json.loads((NOTEBOOKS / "data" / "labelled_windows.json").read_text())
    assert module.build() == shipped
    grades = {g for s in shipped["sources"] for g in (w["grade"] for w in s["windows"])}
    assert grades == {0, 1, 2, 3}


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_notebooks_run_in_order_and_leave_nothing_running(in_order: dict[str, str]) -> None:
    # Each notebook's kernel stopped the embedded Postgres (and any Ray) it started.
    data_dir = in_order["DATA_DIR"]
    left = [
        p
        for p in psutil.process_iter(["cmdline"])
        if data_dir in " ".join(p.info["cmdline"] or []) and p.pid != os.getpid()
    ]
    for proc in left:
        proc.kill()
    assert not left, [p.info["cmdline"] for p in left]


@pytest.mark.slow
def test_tuning_notebook_saves_the_shipped_config(in_order: dict[str, str]) -> None:
    saved = ScorerConfig.load(Path(in_order["CLIPFORGE_TUNED_SCORER"]))
    assert saved.version != ScorerConfig().version
    # The config shipped in configs/scorers/ is exactly what the notebook produces.
    assert saved == ScorerConfig.load(REPO / "configs" / "scorers" / "highlight-tuned.yaml")
