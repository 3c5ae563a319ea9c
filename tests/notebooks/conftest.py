"""Running a notebook in a fresh kernel, and the S3 variables for the test server.

Notebooks run in their own kernels, so they get everything through the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import nbformat
from nbclient import NotebookClient

from clipforge.settings import Settings

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


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
