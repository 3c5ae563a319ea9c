"""ASR fixtures: test media built by scripts/make_test_media.py, and one model per session."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

from models.asr import AsrModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_test_media.py"


@pytest.fixture(scope="session")
def media_script() -> ModuleType:
    """scripts/make_test_media.py as a module (texts of the fixtures, build_all)."""
    spec = importlib.util.spec_from_file_location("make_test_media", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def test_media(media_script: ModuleType) -> dict[str, Path]:
    """Name -> path of every test medium (cached under .cache/test-media)."""
    built: dict[str, Path] = media_script.build_all()
    return built


@pytest.fixture(scope="session")
def asr_model() -> AsrModel:
    """The default ASR model (tiny.en, int8, CPU), loaded once per session."""
    return AsrModel()
