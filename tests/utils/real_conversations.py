"""The real-voice speaker-turn set (scripts/real_conversations.py), built once into .cache."""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = _ROOT / "scripts" / "real_conversations.py"
OUT = _ROOT / ".cache" / "real-turns"


@cache
def real_set() -> dict[str, Path]:
    """Recording name -> 16 kHz WAV (built on first use; scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("real_conversations", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    built: dict[str, Path] = module.build(OUT)
    return built


def truth(wav: Path) -> dict[str, Any]:
    """The recording's reference: speakers, turns [start, end, speaker], onsets [time, text]."""
    data: dict[str, Any] = json.loads(wav.with_suffix(".truth.json").read_text())
    return data


def utterances(wav: Path) -> list[dict[str, float]]:
    """Reference turns in the layout `tests.utils.turns.accuracy` reads."""
    return [{"start": s, "end": e, "speaker": k} for s, e, k in truth(wav)["turns"]]
