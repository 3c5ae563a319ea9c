"""CAM++ (the speaker encoder) as an ONNX graph, exported once from the pinned weights.

The ASR actors that embed speaker windows would otherwise load torch for this one 28 MB
network; ONNX Runtime is already in those processes (faster-whisper's VAD). A batch of 16
windows also takes 0.22 instead of 0.28 CPU s on one thread. Where the graph lives and how it
is exported: `models.onnx_graphs`.

`python -m models.campplus_onnx DEST` exports to DEST (what `ensure_graph` starts); without DEST
it fills the Python environment's folder (`scripts/bootstrap.sh` runs it once per install).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from clipforge.errors import ConfigError
from models import campplus, onnx_graphs, registry
from models.speaker_clusters import unit

#: Bump when the export changes (opset, graph options): the file name carries it.
EXPORT_VERSION = 1
_OPSET = 17
# Largest difference between the graph's and the torch network's unit embeddings allowed when
# the export is checked (float32 rounding in fused kernels is ~1e-5).
_TOLERANCE = 1e-3


def graph_name() -> str:
    """The exported graph's file name: the pinned weights' sha256 and the export's version."""
    return f"campplus-{registry.SPEAKER_ENCODER_SHA256[:12]}-onnx{EXPORT_VERSION}.onnx"


def ensure_graph(data_dir: str | Path | None) -> Path:
    """The exported graph, exporting it first (in a child process) if no folder has it
    (`data_dir` None: the Python environment's folder only)."""
    return onnx_graphs.ensure_graph(graph_name(), data_dir, ["models.campplus_onnx"])


def torch_network() -> Any:
    """The CAM++ torch module with the pinned weights, in eval mode (torch imported here)."""
    import torch

    network = campplus.network()
    state = torch.load(registry.speaker_encoder_weights(), map_location="cpu", weights_only=True)
    network.load_state_dict(state, strict=True)
    return network.eval()


def export(dest: Path) -> Path:
    """Export the pinned CAM++ weights to `dest`, checked against torch (`check`).

    Raises:
        ConfigError: the graph's embeddings differ from the torch network's.
    """
    import torch

    network = torch_network()

    def write(path: Path) -> None:
        with warnings.catch_warnings():  # the exporter's own notice that dynamo is the default
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                network,
                (torch.zeros(2, 80, campplus.N_MELS),),
                str(path),
                dynamo=False,  # the TorchScript exporter: no onnxscript, dynamic axes as declared
                input_names=["fbank"],
                output_names=["embedding"],
                dynamic_axes={"fbank": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
                opset_version=_OPSET,
            )

    return onnx_graphs.write_checked(dest, write, lambda path: check(network, path))


def check(network: Any, path: Path) -> float:
    """Largest difference between unit embeddings of the torch `network` and the graph at
    `path`, over random features of three lengths (the windows' 80 frames and two others: the
    frame axis is dynamic). Raises ConfigError above the tolerance."""
    import torch

    session = onnx_graphs.open_session(path, threads=1)
    rng = np.random.default_rng(0)
    worst = 0.0
    for frames in (80, 57, 160):
        features = rng.standard_normal((3, frames, campplus.N_MELS)).astype(np.float32)
        with torch.inference_mode():
            expected = network(torch.from_numpy(features)).numpy()
        got = session.run(None, {"fbank": features})[0]
        worst = max(worst, float(np.abs(unit(expected) - unit(got)).max()))
    if worst > _TOLERANCE:
        raise ConfigError(f"the exported speaker encoder differs from torch by {worst:.2e}")
    return worst


def main(argv: list[str] | None = None) -> int:
    """`python -m models.campplus_onnx [DEST]`: export to DEST, or (no argument) make sure the
    Python environment holds the graph (what an install runs once)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1:
        print("usage: python -m models.campplus_onnx [DEST]", file=sys.stderr)
        return 2
    if args:
        export(Path(args[0]))
    else:
        print(ensure_graph(None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
