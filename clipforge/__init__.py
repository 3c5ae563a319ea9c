"""ClipForge core: settings, database and job queue, storage, cache, metrics, logging, CLI.

It is also the notebook API. These names resolve on first use from `pipelines.local.notebook`, so
`import clipforge` stays light and the core never imports `models`/`pipelines` at import time:

- `clipforge.transcribe(path)` -> `Transcript` (faster-whisper, in this process)
- `clipforge.score(transcript, path=None)` -> `HighlightResult` (every window, best first)
- `clipforge.find_clips(path_or_transcript, top_k=3)` -> `list[HighlightClip]`
- `clipforge.captions(transcript, clip, style="karaoke")` -> `Captions` (srt, vtt, ass)
- `clipforge.process(source, out_dir, local=False)` -> `ProcessResult` (`local=True`: no
  Postgres, no Ray)

`clipforge.client.Client` is the typed HTTP client of the REST API.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("clipforge")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from pipelines.local.notebook import captions, find_clips, process, score, transcribe

_LAZY = frozenset({"captions", "find_clips", "process", "score", "transcribe"})

__all__ = ["__version__", "captions", "find_clips", "process", "score", "transcribe"]


def __getattr__(name: str) -> Any:
    """Resolve the notebook API from `pipelines.local.notebook` the first time one of its names is used."""
    if name in _LAZY:
        value = getattr(import_module("pipelines.local.notebook"), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module 'clipforge' has no attribute {name!r}")


def __dir__() -> list[str]:
    """Module attributes plus the lazily resolved API names (for tab completion)."""
    return sorted(set(globals()) | _LAZY)
