"""ONNX graphs derived from shipped torch weights: where they live, how they are made, how they run.

Two networks run through ONNX Runtime instead of torch: the speaker encoder (CAM++,
`models.campplus_onnx`) and the sentence encoder (MiniLM, `models.text_encoder_onnx`). The
processes that use them (ASR and detect actors, Serve replicas) then never import torch or
transformers: a detect actor's text encoder loads in 0.7 instead of 4.9 CPU s and rests at 212
instead of 464 MB; an ASR actor with the speaker encoder at 345 instead of 479 MB
(docs/capacity.md, 2026-12-06 fifth session).

A graph is exported from the weights once, by a child process (so torch never enters the
caller), checked against the torch network before it is kept, written under a temporary name
and renamed. Its file name carries the weights' sha256 and the exporter's version, so other
weights or another export never reuse it. It lives in the Python environment
(`share/clipforge/models`, filled by `scripts/bootstrap.sh` and the image build, so every data
dir and every pod reuses it) or, where that is read-only, under `DATA_DIR/models`.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clipforge.errors import ConfigError

_EXPORT_TIMEOUT_S = 600


def environment_folder() -> Path:
    """The Python environment's own folder of graphs (`<prefix>/share/clipforge/models`)."""
    return Path(sys.prefix) / "share" / "clipforge" / "models"


def graph_folders(data_dir: str | Path) -> list[Path]:
    """Where graphs are looked for and exported, in order: the Python environment's own
    folder (`environment_folder`), then `data_dir/models`."""
    return [environment_folder(), Path(data_dir) / "models"]


def ensure_graph(name: str, data_dir: str | Path | None, exporter: Sequence[str]) -> Path:
    """The graph called `name`, exported first if no folder has it: `python -m <exporter...>
    DEST` in a child process. Concurrent callers (actors starting side by side) wait on one
    lock, so one of them exports. `data_dir` None: the Python environment's folder only (an
    install filling it).

    Raises:
        ConfigError: no folder is writable, or the export failed (its output is in the message).
    """
    folders = graph_folders(data_dir) if data_dir is not None else [environment_folder()]
    found = next((f / name for f in folders if (f / name).is_file()), None)
    if found is not None:
        return found
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            lock = open(folder / f".{name}.lock", "w")  # noqa: SIM115 - held by `with` below
        except OSError:
            continue  # read-only here: the next folder
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            dest = folder / name
            if not dest.is_file():
                _export_in_child([*exporter, str(dest)], dest)
            return dest
    raise ConfigError(f"no writable folder for the model graph {name}: {folders}")


def _export_in_child(args: list[str], dest: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=_EXPORT_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0 or not dest.is_file():
        raise ConfigError(
            f"could not export {dest.name}: {(done.stderr or done.stdout).strip()[-2000:]}"
        )


def open_session(path: Path, *, threads: int = 1) -> Any:
    """An ONNX Runtime session on `path`, on the CPU with `threads` threads (0: ORT's default,
    one per physical core).

    The memory arena is off: inputs come in varying shapes, and the arena would keep its largest
    batch's buffers for the life of the process.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3  # warnings about unused initialisers are not ours to fix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def write_checked(dest: Path, export: Any, check: Any) -> Path:
    """Run `export(tmp)`, then `check(tmp)` (raises when the graph is wrong), then rename the
    temporary file to `dest`; nothing is left behind on failure."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        export(tmp)
        check(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
