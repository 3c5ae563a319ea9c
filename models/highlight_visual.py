"""Picture features of candidate windows: scene cuts and motion from sampled frames.

Frames come from `clipforge.media.sample_frames` (objects with `t` and an RGB uint8 `image`),
but anything with those two attributes works, so this module does not depend on the decoder.
Frames are reduced to small grey images and colour histograms once; a cut is a jump in the
colour histogram (robust to camera motion), motion is the mean absolute pixel change between
neighbouring frames that are not a cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from clipforge.errors import ValidationFailed
from models.highlight_windows import Window

Array = npt.NDArray[np.float64]

_BINS = 16
_THUMB = 64  # pixels on the longer side of the grey thumbnail used for motion


class FrameLike(Protocol):
    """A sampled video frame: time in seconds and an (H, W, 3) RGB or (H, W) grey uint8 image."""

    @property
    def t(self) -> float: ...

    @property
    def image(self) -> npt.NDArray[np.uint8]: ...


@dataclass(frozen=True, slots=True)
class VisualTimeline:
    """Per-frame-pair change measures.

    Attributes:
        times: time of the later frame of each consecutive pair.
        cuts: times of scene cuts.
        motion: mean absolute grey change (0..1) per pair, 0 for pairs that are cuts.
    """

    times: Array
    cuts: Array
    motion: Array


def _thumb_and_hist(image: npt.NDArray[np.uint8]) -> tuple[Array, Array]:
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3) or image.dtype != np.uint8:
        raise ValidationFailed("frames must be (H, W, 3) or (H, W) uint8 images")
    step = max(1, max(image.shape[:2]) // _THUMB)
    grey = image[::step, ::step].astype(np.float64).mean(axis=2) / 255.0
    hist = np.concatenate(
        [
            np.bincount(image[:, :, c].ravel() // (256 // _BINS), minlength=_BINS)
            for c in range(image.shape[2])
        ]
    ).astype(np.float64)
    return grey, hist / hist.sum()


def visual_timeline(frames: Sequence[FrameLike], cut_threshold: float) -> VisualTimeline:
    """Analyse sampled frames once. Raises `ValidationFailed` when times do not increase or
    frames change size."""
    if len(frames) < 2:
        raise ValidationFailed("need at least two frames to measure change")
    times = np.array([float(f.t) for f in frames])
    if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
        raise ValidationFailed("frame times must be finite and strictly increasing")
    greys: list[Array] = []
    hists: list[Array] = []
    for frame in frames:
        grey, hist = _thumb_and_hist(np.asarray(frame.image))
        if greys and grey.shape != greys[0].shape:
            raise ValidationFailed("all frames must have the same size")
        greys.append(grey)
        hists.append(hist)
    stack = np.stack(greys)
    hist_stack = np.stack(hists)
    # Half the L1 distance of normalised histograms is in 0..1 (1 = no colour in common).
    distance = 0.5 * np.abs(np.diff(hist_stack, axis=0)).sum(axis=1)
    is_cut = distance >= cut_threshold
    change = np.abs(np.diff(stack, axis=0)).mean(axis=(1, 2))
    return VisualTimeline(
        times=times[1:], cuts=times[1:][is_cut], motion=np.where(is_cut, 0.0, change)
    )


def visual_features(
    timeline: VisualTimeline, windows: Sequence[Window]
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Scene cuts and motion per window (cuts per 30 s, mean motion)."""
    starts = np.array([w.start for w in windows])
    ends = np.array([w.end for w in windows])
    cuts = (
        np.searchsorted(timeline.cuts, ends, side="right")
        - np.searchsorted(timeline.cuts, starts, side="right")
    ).astype(np.float64)
    prefix = np.concatenate([[0.0], np.cumsum(timeline.motion)])
    lo = np.searchsorted(timeline.times, starts, side="right")
    hi = np.searchsorted(timeline.times, ends, side="right")
    pairs = np.maximum(hi - lo, 1)
    motion = np.where(hi > lo, (prefix[hi] - prefix[lo]) / pairs, 0.0)
    per_30s = cuts * 30.0 / np.maximum(ends - starts, 1e-3)
    subscores = {
        "scene_cuts": np.clip(per_30s / 3.0, 0.0, 1.0),
        # 0.08 mean grey change between samples is a lot of movement (a pan or a gesturing host).
        "motion": np.clip(motion / 0.08, 0.0, 1.0),
    }
    return subscores, {"cuts": cuts, "motion": motion}
