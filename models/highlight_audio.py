"""Audio features of candidate windows from a mono float32 array (16 kHz from `clipforge.media`).

One pass over the whole recording computes frame loudness (dB) and spectral flatness; windows
then read prefix sums, so many overlapping windows cost almost nothing extra. Flatness tells
noise-like sound (applause, laughter, crowd) from voiced speech, whose energy sits in harmonics;
a loud, flat stretch longer than a fricative is counted as a reaction burst.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clipforge.errors import ValidationFailed
from models.highlight_windows import Window

Array = npt.NDArray[np.float64]

FRAME_S = 0.064
HOP_S = 0.032
#: Shortest noise-like stretch counted as a reaction; fricatives ("s", "sh") are shorter.
MIN_BURST_S = 0.3
_BLOCK = 2048  # frames per FFT block: bounds memory on multi-hour audio
_FLOOR_DB = -100.0


@dataclass(frozen=True, slots=True)
class AudioTimeline:
    """Frame-level loudness and flatness of one recording.

    Attributes:
        hop_s: seconds between frames.
        db: frame loudness in dBFS.
        flatness: spectral flatness per frame (0 = tonal, 1 = white noise).
        median_db: median frame loudness, the reference for "louder than usual".
        bursts: start times of loud, noise-like bursts in seconds.
    """

    hop_s: float
    db: Array
    flatness: Array
    median_db: float
    bursts: Array


def _check_audio(audio: npt.NDArray[np.floating], sample_rate: int) -> npt.NDArray[np.float32]:
    if not isinstance(audio, np.ndarray) or audio.ndim != 1:
        raise ValidationFailed("audio must be a 1-D (mono) numpy array")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValidationFailed(f"audio must be float samples in [-1, 1], got {audio.dtype}")
    if sample_rate <= 0:
        raise ValidationFailed("sample_rate must be positive")
    if audio.size < int(FRAME_S * sample_rate):
        raise ValidationFailed("audio is shorter than one analysis frame")
    if not np.all(np.isfinite(audio)):
        raise ValidationFailed("audio contains NaN or infinite samples")
    return audio.astype(np.float32, copy=False)


def _frame_stats(samples: npt.NDArray[np.float32], frame: int, hop: int) -> tuple[Array, Array]:
    frames = np.lib.stride_tricks.sliding_window_view(samples, frame)[::hop]
    window = np.hanning(frame).astype(np.float32)
    db = np.empty(len(frames))
    flatness = np.empty(len(frames))
    for begin in range(0, len(frames), _BLOCK):
        block = frames[begin : begin + _BLOCK]
        energy = np.mean(block.astype(np.float64) ** 2, axis=1)
        db[begin : begin + len(block)] = 10.0 * np.log10(energy + 1e-10)
        power = np.abs(np.fft.rfft(block * window, axis=1))[:, 1:] ** 2 + 1e-12
        geometric = np.exp(np.mean(np.log(power), axis=1))
        flatness[begin : begin + len(block)] = geometric / np.mean(power, axis=1)
    return np.maximum(db, _FLOOR_DB), flatness


def _bursts(flags: npt.NDArray[np.bool_], hop_s: float) -> Array:
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    long_enough = (stops - starts) * hop_s >= MIN_BURST_S
    return np.asarray(starts[long_enough] * hop_s, dtype=np.float64)


def audio_timeline(
    audio: npt.NDArray[np.floating], sample_rate: int, burst_flatness: float
) -> AudioTimeline:
    """Analyse a whole recording once; raises `ValidationFailed` for unusable arrays."""
    samples = _check_audio(audio, sample_rate)
    frame = round(FRAME_S * sample_rate)
    hop = round(HOP_S * sample_rate)
    return _timeline(*_frame_stats(samples, frame, hop), hop / sample_rate, burst_flatness)


def audio_timeline_blocks(
    blocks: Iterable[npt.NDArray[np.floating]], sample_rate: int, burst_flatness: float
) -> AudioTimeline:
    """`audio_timeline` of a recording read block by block (frame for frame the same values):
    memory is one block and the frame arrays (2 x 1.8 MB for two hours), not the recording."""
    frame = round(FRAME_S * sample_rate)
    hop = round(HOP_S * sample_rate)
    db: list[Array] = []
    flatness: list[Array] = []
    pending = np.zeros(0, dtype=np.float32)
    total = 0
    for block in blocks:
        total += len(block)
        pending = np.concatenate([pending, _check_block(block)])
        if len(pending) < frame:
            continue
        count = (len(pending) - frame) // hop + 1  # whole frames in what is held
        stats = _frame_stats(pending[: (count - 1) * hop + frame], frame, hop)
        db.append(stats[0])
        flatness.append(stats[1])
        pending = pending[count * hop :]  # the next frame starts here
    if total < frame:
        raise ValidationFailed("audio is shorter than one analysis frame")
    joined = np.concatenate(db), np.concatenate(flatness)
    return _timeline(*joined, hop / sample_rate, burst_flatness)


def _check_block(block: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    if not np.issubdtype(block.dtype, np.floating) or block.ndim != 1:
        raise ValidationFailed("audio blocks must be 1-D float samples")
    if not np.all(np.isfinite(block)):
        raise ValidationFailed("audio contains NaN or infinite samples")
    return block.astype(np.float32, copy=False)


def _timeline(db: Array, flatness: Array, hop_s: float, burst_flatness: float) -> AudioTimeline:
    median_db = float(np.median(db))
    loud = db >= median_db
    return AudioTimeline(
        hop_s=hop_s,
        db=db,
        flatness=flatness,
        median_db=median_db,
        bursts=_bursts(loud & (flatness >= burst_flatness), hop_s),
    )


def _scale(values: Array, low: float, high: float) -> Array:
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def audio_features(
    timeline: AudioTimeline, windows: Sequence[Window]
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Energy (louder and more dynamic than the recording's norm) and reactions per window."""
    # Frames far below the median are silence; including them would make every pause look
    # like "dynamics".
    active = timeline.db > timeline.median_db - 15.0
    values = np.where(active, timeline.db, 0.0)
    prefix_n = np.concatenate([[0.0], np.cumsum(active)])
    prefix_s = np.concatenate([[0.0], np.cumsum(values)])
    prefix_q = np.concatenate([[0.0], np.cumsum(values**2)])
    n_frames = len(timeline.db)
    starts = np.array([w.start for w in windows])
    ends = np.array([w.end for w in windows])
    lo = np.clip((starts / timeline.hop_s).astype(np.intp), 0, n_frames)
    hi = np.clip((ends / timeline.hop_s).astype(np.intp), 0, n_frames)
    count = prefix_n[hi] - prefix_n[lo]
    safe = np.maximum(count, 1.0)
    mean = (prefix_s[hi] - prefix_s[lo]) / safe
    var = np.maximum((prefix_q[hi] - prefix_q[lo]) / safe - mean**2, 0.0)
    std = np.sqrt(var)
    has_audio = count > 0
    relative = np.where(has_audio, mean - timeline.median_db, 0.0)
    energy = np.where(has_audio, 0.5 * _scale(relative, 0.0, 6.0) + 0.5 * _scale(std, 3.0, 9.0), 0)
    bursts = (
        np.searchsorted(timeline.bursts, ends, side="left")
        - np.searchsorted(timeline.bursts, starts, side="left")
    ).astype(np.float64)
    subscores = {"energy": energy.astype(np.float64), "reactions": _scale(bursts, 0.0, 2.0)}
    return subscores, {"loudness_db": relative, "loudness_std_db": std, "bursts": bursts}
