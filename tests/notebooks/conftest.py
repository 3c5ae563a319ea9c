"""Notebook fixtures: one database, data folder and scaled-down config shared by the notebooks.

Notebooks run in their own kernels, so they get everything through the environment: the
session's Postgres (a database of their own), the session's Ray (`RAY_ADDRESS`), the S3-compatible
test server, a temporary `DATA_DIR`, and where the tuned scorer config goes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from clipforge.settings import Settings
from pipelines.config import load_pipeline_config
from tests.conftest import temporary_database

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="module")
def notebook_database_url(admin_database_url: str) -> Iterator[str]:
    """A database of the notebooks' own (they create their tables through migrate)."""
    with temporary_database(admin_database_url) as url:
        yield url


@pytest.fixture(scope="module")
def notebook_env(
    notebook_database_url: str, ray_local: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Environment of every notebook kernel."""
    import ray

    root = tmp_path_factory.mktemp("notebooks")
    config = load_pipeline_config(
        worker__idle_poll_s=0.2,
        transcribe__asr_actors_max=1,
        transcribe__asr_num_cpus=0.5,
        detect__num_cpus=0.5,
        detect__top_k=1,
        export__short_side=240,
        export__num_cpus=0.5,
    )
    config_path = root / "pipeline.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True)))
    return {
        "DATA_DIR": str(root / "data"),
        "DATABASE_URL": notebook_database_url,
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "RAY_AUTH_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "ENVIRONMENT": "test",
        "CLIPFORGE_PIPELINE_CONFIG": str(config_path),
        "CLIPFORGE_NB_TOP_K": "1",
        "CLIPFORGE_TUNED_SCORER": str(root / "highlight-tuned.yaml"),
    }


def s3_env(s3_settings: Settings) -> dict[str, str]:
    """S3_* variables for the test server (notebook 03 creates its bucket)."""
    secret = s3_settings.s3_secret_access_key
    return {
        "S3_ENDPOINT_URL": str(s3_settings.s3_endpoint_url),
        "S3_BUCKET": str(s3_settings.s3_bucket),
        "S3_REGION": s3_settings.s3_region,
        "S3_ACCESS_KEY_ID": str(s3_settings.s3_access_key_id or ""),
        "S3_SECRET_ACCESS_KEY": secret.get_secret_value() if secret else "",
    }


def run_notebook(name: str, env: dict[str, str], out_dir: Path, timeout_s: int = 240) -> None:
    """Execute notebooks/`name` top to bottom in a fresh kernel with `env` added to the
    environment; the executed copy is written to `out_dir` (for reading a failure)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        nb,
        timeout=timeout_s,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    removed = {k: "" for k in ("REDIS_URL", "S3_ENDPOINT_URL", "S3_BUCKET") if k not in env}
    with mock.patch.dict(os.environ, env | removed):
        for key in removed:
            os.environ.pop(key)
        try:
            client.execute()
        finally:
            nbformat.write(nb, out_dir / name)  # type: ignore[no-untyped-call]
