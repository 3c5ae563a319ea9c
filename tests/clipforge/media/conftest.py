"""Test media for the media tests: built once per machine by scripts/make_test_media.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "make_test_media.py"


def load_media_script() -> ModuleType:
    """Import scripts/make_test_media.py (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_test_media", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def test_media() -> dict[str, Path]:
    """Name -> path of every test medium (cached under .cache/test-media)."""
    built: dict[str, Path] = load_media_script().build_all()
    return built
