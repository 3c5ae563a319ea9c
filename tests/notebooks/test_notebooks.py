"""The notebooks run top to bottom (each ends with its own assertions), are stored without
outputs, and the tuning notebook's saved config is what the detect stage records on clips."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from clipforge.db.pool import Pool, create_pool
from clipforge.settings import Settings, load_settings
from models.highlight_config import ScorerConfig
from pipelines.batch.backfill import BackfillRequest, run_backfill
from pipelines.config import load_pipeline_config
from tests.notebooks.conftest import NOTEBOOKS, run_notebook, s3_env

pytestmark = pytest.mark.slow
NAMES = (
    "01_quickstart.ipynb",
    "02_tune_highlights.ipynb",
    "03_api_client.ipynb",
    "04_backfill.ipynb",
)
REPO = NOTEBOOKS.parent


@pytest.fixture(scope="module")
def quickstart(notebook_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """01 has processed the test video into the notebooks' database."""
    run_notebook("01_quickstart.ipynb", notebook_env, tmp_path_factory.mktemp("executed"))


@pytest.fixture(scope="module")
def tuned_scorer(notebook_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """02 has saved the tuned scorer config; its path."""
    run_notebook("02_tune_highlights.ipynb", notebook_env, tmp_path_factory.mktemp("executed"))
    return Path(notebook_env["CLIPFORGE_TUNED_SCORER"])


@pytest.fixture(scope="module")
def notebook_pool(notebook_env: dict[str, str]) -> Iterator[tuple[Settings, Pool]]:
    """Settings and a pool on the notebooks' database and data folder."""
    settings = load_settings(
        database_url=notebook_env["DATABASE_URL"],
        data_dir=Path(notebook_env["DATA_DIR"]),
        environment="test",
    )
    url = notebook_env["DATABASE_URL"]
    with create_pool(settings, url, application_name="notebook-tests", max_size=4) as pool:
        yield settings, pool


def _clips(pool: Pool) -> list[tuple[str, str]]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT id::text AS id, split_part(model_version, '+', 1) AS v FROM clips"
        ).fetchall()
    return [(r["id"], r["v"]) for r in rows]


@pytest.mark.parametrize("name", NAMES)
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


def test_tuning_notebook_saves_the_shipped_config(tuned_scorer: Path) -> None:
    saved = ScorerConfig.load(tuned_scorer)
    assert saved.version != ScorerConfig().version
    # The config shipped in configs/scorers/ is exactly what the notebook produces.
    assert saved == ScorerConfig.load(REPO / "configs" / "scorers" / "highlight-tuned.yaml")


def test_quickstart_notebook(quickstart: None, notebook_pool: tuple[Settings, Pool]) -> None:
    _, pool = notebook_pool
    assert {v for _, v in _clips(pool)} == {ScorerConfig().version}


def test_backfill_notebook(
    quickstart: None, tuned_scorer: Path, notebook_env: dict[str, str], tmp_path: Path
) -> None:
    run_notebook("04_backfill.ipynb", notebook_env, tmp_path)


def test_detect_stage_records_the_tuned_version(
    quickstart: None,
    tuned_scorer: Path,
    notebook_pool: tuple[Settings, Pool],
    notebook_env: dict[str, str],
) -> None:
    settings, pool = notebook_pool
    before = _clips(pool)
    # The detect stage takes the scorer from the pipeline config, as the worker does.
    config = load_pipeline_config(
        Path(notebook_env["CLIPFORGE_PIPELINE_CONFIG"]), detect__scorer_config=str(tuned_scorer)
    )
    progress = run_backfill(
        settings,
        pool,
        config,
        BackfillRequest(stage="detect", force=True, run_id="notebook-test", drop_exports=True),
        database_url=notebook_env["DATABASE_URL"],
    )
    assert [(p.selected, p.succeeded, p.failed) for p in progress] == [(1, 1, 0)]
    after = _clips(pool)
    assert after and {v for _, v in after} == {ScorerConfig.load(tuned_scorer).version}
    assert not {i for i, _ in before} & {i for i, _ in after}  # detect really re-ran


def test_api_client_notebook(
    notebook_env: dict[str, str],
    fresh_database_url: str,
    s3_settings: Settings,
    tmp_path: Path,
) -> None:
    env = notebook_env | s3_env(s3_settings) | {"DATABASE_URL": fresh_database_url}
    run_notebook("03_api_client.ipynb", env, tmp_path, timeout_s=300)
