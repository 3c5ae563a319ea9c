"""Picture features of candidate windows: scene cuts and motion from sampled frames.

Frames come from `clipforge.media.sample_frames` (objects with `t` and an RGB uint8 `image`),
but anything with those two attributes works, so this module does not depend on the decoder.
Frames are reduced to small grey images and colour histograms once; a cut is a jump in the
colour histogram (robust to camera motion), motion is the mean absolute pixel change between
neighbouring frames that are not a cut.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
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


def visual_timeline(frames: Iterable[FrameLike], cut_threshold: float) -> VisualTimeline:
    """Analyse sampled frames once, as they come: only the previous frame's thumbnail and
    histogram are held, not the frames (a 2-hour source's 3,600 frames were 210 MB at once).
    Raises `ValidationFailed` when times do not increase or frames change size."""
    times: list[float] = []
    distance: list[float] = []
    change: list[float] = []
    before: tuple[Array, Array] | None = None
    for frame in frames:
        t = float(frame.t)
        grey, hist = _thumb_and_hist(np.asarray(frame.image))
        if not math.isfinite(t) or (times and t <= times[-1]):
            raise ValidationFailed("frame times must be finite and strictly increasing")
        if before is not None:
            if grey.shape != before[0].shape:
                raise ValidationFailed("all frames must have the same size")
            # Half the L1 distance of normalised histograms is in 0..1 (1 = no colour in common).
            distance.append(0.5 * float(np.abs(hist - before[1]).sum()))
            change.append(float(np.abs(grey - before[0]).mean()))
        times.append(t)
        before = grey, hist
    if len(times) < 2:
        raise ValidationFailed("need at least two frames to measure change")
    pair_times = np.array(times[1:])
    is_cut = np.array(distance) >= cut_threshold
    return VisualTimeline(
        times=pair_times, cuts=pair_times[is_cut], motion=np.where(is_cut, 0.0, np.array(change))
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
