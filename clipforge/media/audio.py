"""Decode audio to mono float32 at a fixed rate (16 kHz for ASR), whole or streamed in blocks.

PyAV's resampler does the downmix and rate conversion in FFmpeg's C code. `iter_audio` keeps at
most about two blocks of samples in memory, so a multi-hour stream costs the same memory as a
one-minute one; `decode_audio` is the convenience wrapper for clips that fit in memory.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from clipforge.media.container import decode_frames, open_input
from clipforge.media.errors import EmptyMedia, NoAudioStream


def decode_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio stream of `path` to a mono float32 array in [-1, 1].

    Raises:
        EmptyMedia, CorruptMedia: unreadable input, or an audio stream without samples.
        NoAudioStream: the file has no audio stream.
    """
    blocks = list(iter_audio(path, sample_rate=sample_rate))
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]


def iter_audio(
    path: str | Path, sample_rate: int = 16000, block_s: float = 30.0
) -> Iterator[np.ndarray]:
    """Stream the first audio stream of `path` as mono float32 blocks of `block_s` seconds.

    Every block has exactly `round(block_s * sample_rate)` samples except the last, so block `i`
    starts at `i * block_s` seconds. At least one block is yielded.

    Raises:
        EmptyMedia, CorruptMedia: unreadable input, or an audio stream without samples.
        NoAudioStream: the file has no audio stream.
    """
    if sample_rate <= 0 or block_s <= 0:
        raise ValueError("sample_rate and block_s must be positive")
    block_len = round(block_s * sample_rate)
    pending: list[np.ndarray] = []
    pending_len = 0
    total = 0
    for samples in _decoded_samples(path, sample_rate):
        pending.append(samples)
        pending_len += len(samples)
        total += len(samples)
        if pending_len >= block_len:
            joined = np.concatenate(pending)
            # Yield whole blocks; keep the tail for the next block.
            for start in range(0, len(joined) - block_len + 1, block_len):
                yield joined[start : start + block_len]
            tail = joined[len(joined) - len(joined) % block_len :]
            pending, pending_len = ([tail], len(tail)) if len(tail) else ([], 0)
    if total == 0:
        raise EmptyMedia(path, "the audio stream has no samples")
    if pending_len:
        yield np.concatenate(pending)


def _decoded_samples(path: str | Path, sample_rate: int) -> Iterator[np.ndarray]:
    """Resampled mono float32 pieces, one per decoded frame (a few ms each)."""
    with open_input(path) as container:
        if not container.streams.audio:
            raise NoAudioStream(path)
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            for frame in decode_frames(container, stream, path):
                for out in resampler.resample(frame):
                    yield out.to_ndarray().reshape(-1)
            for out in resampler.resample(None):  # flush the resampler's delay line
                yield out.to_ndarray().reshape(-1)
        finally:
            # PyAV resampler graphs are only freed by the cycle collector (faster-whisper #390).
            del resampler
            gc.collect()
