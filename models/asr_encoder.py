"""Whisper's encoder, run once for the window that decides a source's language.

Every transcription path detects the language on a source's first chunk, then decodes that
chunk in its first batch. Detection and decoding each ran the encoder over the same 30 s window:
on a 26 s video that second pass was 2.2 of 7.1 CPU s of the ASR actor's work (one thread,
Whisper base; docs/capacity.md). Here detection encodes the window exactly as the batched
pipeline will (the chunk at the start of a silence-filled 30 s slot), and the encoder output
is kept; when the pipeline then encodes a batch holding that same window, its row is reused
and only the other rows are encoded.

A row is reused only when its features are equal to the kept ones, element for element, so a
change in how faster-whisper computes features costs the saving, never a wrong transcript.
CPU only: on a GPU the encoder pass is cheap and its output stays on the device.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt

# Windows kept at once: the Serve replica detects the languages of a few requests before their
# chunks are batched together. Each kept output is 1500 x 512 float32 (3 MB) for base.
_KEPT = 4

Features = npt.NDArray[np.float32]


class EncoderMemo:
    """Stands in for `WhisperModel.encode` on one model instance (set as its attribute)."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._encode = model.encode  # the bound original
        self._kept: list[tuple[Features, npt.NDArray[np.float32]]] = []
        self._alive: npt.NDArray[np.float32] | None = None  # backs the last assembled output
        self._lock = threading.Lock()
        self.rows_encoded = 0  # windows run through the encoder (tests, benchmarks)
        self.rows_reused = 0
        model.encode = self

    def slot_features(self, audio: npt.NDArray[np.float32]) -> Features:
        """(n_mels, frames) features of `audio` (at most 30 s) as the batched pipeline computes
        them for a chunk: the chunk at the start of a 30 s slot of silence."""
        extractor = self._model.feature_extractor
        slot = np.zeros(extractor.n_samples, dtype=np.float32)
        slot[: min(len(audio), len(slot))] = audio[: len(slot)]
        features: Features = extractor(slot)[..., :-1]
        return features

    def encode_kept(self, features: Features) -> Any:
        """Encode one window and keep its output for the batch that will hold it."""
        encoded = self(features)
        with self._lock:
            self._kept = [*self._kept[-(_KEPT - 1) :], (features, np.array(encoded))]
        return encoded

    def __call__(self, features: Features) -> Any:
        """The encoder output of `features` ((batch,) n_mels, frames), reusing kept rows."""
        batch = features[None] if features.ndim == 2 else features
        with self._lock:
            found: dict[int, npt.NDArray[np.float32]] = {}
            for row in range(len(batch)):
                for k, (kept, encoded) in enumerate(self._kept):
                    if kept.shape == batch[row].shape and np.array_equal(kept, batch[row]):
                        found[row] = encoded[0]
                        del self._kept[k]  # one batch holds a source's first window once
                        break
        if not found:
            self.rows_encoded += len(batch)
            return self._encode(features)
        import ctranslate2

        rest = [row for row in range(len(batch)) if row not in found]
        if rest:
            encoded_rest = np.array(self._encode(np.ascontiguousarray(batch[rest])))
            for row, out in zip(rest, encoded_rest, strict=True):
                found[row] = out
        self.rows_encoded += len(rest)
        self.rows_reused += len(batch) - len(rest)
        assembled = np.ascontiguousarray(np.stack([found[row] for row in range(len(batch))]))
        self._alive = assembled  # the StorageView shares this memory: keep it alive
        return ctranslate2.StorageView.from_array(assembled)
