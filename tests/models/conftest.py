"""ASR fixtures: one model per session (test media come from tests/conftest.py)."""

from __future__ import annotations

import os

import pytest

from models.asr import AsrModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def asr_model() -> AsrModel:
    """The ASR model of `ASR_MODEL` (tiny.en in the tests: tests/conftest.py), int8, CPU,
    loaded once per session."""
    return AsrModel()
