"""Turn a wobbly target position into a calm camera path, and the path into an ffmpeg expression.

A virtual camera should hold still while the subject barely moves, follow it smoothly when it
walks, and never jitter or jump. Per shot (the path may cut only at scene cuts and speaker
switches) and per axis:

1. Dead band: the camera target stays put while the subject is within `dead_band` of it and is
   dragged along at the band's edge beyond that (a "lazy" camera: no drift for detector noise).
2. Zero-phase Gaussian smoothing: the planner knows the future, so the camera can start moving
   before the subject does instead of lagging behind it.
3. Bounds: if the result still moves faster than `max_speed` or accelerates harder than
   `max_accel`, it is smoothed again with a wider kernel until it does not (checked numerically,
   so the bounds hold by construction, not by hope).
4. Clamp into the picture: the window never leaves the frame.

The path is then thinned to the keys a piecewise-linear curve needs (Ramer-Douglas-Peucker, half
a pixel of error) and written as a balanced tree of `if(lt(t,...))`, so ffmpeg evaluates
log2(keys) comparisons per frame however long the clip is.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
#: (time in seconds, value) keys of a piecewise-linear curve; two keys at the same time are a cut.
Keys = tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class PathLimits:
    """Bounds of the camera path, relative to the crop window's size along the axis.

    Attributes:
        max_speed: crop sizes per second (1.0: the picture inside the window is replaced in 1 s).
        max_accel: crop sizes per second squared.
        dead_band: subject movement ignored around the camera target, in crop sizes.
        sigma_s: base Gaussian smoothing width in seconds.
    """

    max_speed: float = 0.8
    max_accel: float = 2.0
    dead_band: float = 0.05
    sigma_s: float = 0.4


def smooth_path(
    times: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    span: float,
    crop: float,
    cuts: Sequence[float] = (),
    limits: PathLimits | None = None,
) -> FloatArray:
    """Camera positions at `times` (evenly spaced) following `targets`, each in 0..`span`.

    Args:
        times: sample times in seconds, increasing and evenly spaced.
        targets: wanted window positions (left or top edge) at those times; NaN = no opinion
            (held from the nearest known value of the same shot).
        span: largest position (picture size minus window size).
        crop: window size along this axis (the unit of the limits).
        cuts: times where the path may jump (it restarts on the first sample at or after each).
    """
    lim = limits or PathLimits()
    t = np.asarray(times, dtype=np.float64)
    raw = np.asarray(targets, dtype=np.float64)
    out = np.full(t.shape, span / 2.0)
    if t.size == 0 or span <= 0:
        return np.zeros(t.shape) if span <= 0 else out
    dt = float(np.median(np.diff(t))) if t.size > 1 else 1.0
    for lo, hi in _pieces(t, cuts):
        piece = _fill(raw[lo:hi], span / 2.0)
        piece = _dead_band(piece, lim.dead_band * crop)
        out[lo:hi] = _bounded_smooth(piece, dt, crop, lim)
    return np.asarray(np.clip(out, 0.0, span), dtype=np.float64)


def _pieces(t: FloatArray, cuts: Sequence[float]) -> list[tuple[int, int]]:
    starts = sorted({0, *(int(np.searchsorted(t, c - 1e-9)) for c in cuts)} - {t.size})
    return list(zip(starts, [*starts[1:], t.size], strict=True))


def _fill(values: FloatArray, default: float) -> FloatArray:
    """NaNs replaced by the nearest known value (linear between known ones)."""
    known = np.flatnonzero(~np.isnan(values))
    if known.size == 0:
        return np.full(values.shape, default)
    idx = np.arange(values.size)
    return np.interp(idx, known, values[known])


def _dead_band(values: FloatArray, band: float) -> FloatArray:
    """Backlash: hold while within `band`, else follow at the band's edge. The start is the
    median of the first second or so, not the first (possibly noisy) sample."""
    out = np.empty_like(values)
    current = float(np.median(values[: max(1, min(values.size, 6))]))
    for i, v in enumerate(values):
        if v > current + band:
            current = v - band
        elif v < current - band:
            current = v + band
        out[i] = current
    return out


def _gaussian(values: FloatArray, sigma: float) -> FloatArray:
    """Zero-phase Gaussian filter (sigma in samples), edges padded with the end values."""
    if sigma <= 0 or values.size < 2:
        return values.copy()
    radius = max(1, math.ceil(3.0 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, radius, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def _bounded_smooth(values: FloatArray, dt: float, crop: float, lim: PathLimits) -> FloatArray:
    sigma = lim.sigma_s / dt
    smoothed = _gaussian(values, sigma)
    for _ in range(12):
        speed, accel = motion_stats(smoothed, dt)
        if speed <= lim.max_speed * crop and accel <= lim.max_accel * crop:
            return smoothed
        sigma *= 1.5
        smoothed = _gaussian(values, sigma)
    # Smoothing a bounded signal ever wider converges to its mean: a still camera.
    return np.full(values.shape, float(values.mean()))


def motion_stats(values: FloatArray, dt: float) -> tuple[float, float]:
    """Largest |speed| and |acceleration| of a sampled path (units per second, per second^2)."""
    if values.size < 2:
        return 0.0, 0.0
    v = np.diff(values) / dt
    a = np.diff(v) / dt if v.size > 1 else np.zeros(1)
    return float(np.abs(v).max()), float(np.abs(a).max())


def to_keys(times: npt.ArrayLike, values: npt.ArrayLike, *, tolerance: float = 0.5) -> Keys:
    """The fewest keys whose piecewise-linear curve stays within `tolerance` of the samples."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if t.size <= 2:
        return tuple((float(a), round(float(b), 1)) for a, b in zip(t, v, strict=True))
    keep = np.zeros(t.size, dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, t.size - 1)]
    while stack:
        lo, hi = stack.pop()
        if hi - lo < 2:
            continue
        seg_t, seg_v = t[lo : hi + 1], v[lo : hi + 1]
        line = v[lo] + (v[hi] - v[lo]) * (seg_t - t[lo]) / (t[hi] - t[lo])
        err = np.abs(seg_v - line)
        worst = int(err.argmax())
        if err[worst] > tolerance:
            keep[lo + worst] = True
            stack += [(lo, lo + worst), (lo + worst, hi)]
    return tuple((float(a), round(float(b), 1)) for a, b in zip(t[keep], v[keep], strict=True))


def join_pieces(pieces: Sequence[Keys], cuts: Sequence[float]) -> Keys:
    """Keys of consecutive shots as one curve with a clean cut at each of `cuts` (the times
    between piece i and i + 1): the earlier shot holds its last value up to the cut, the later
    one starts there, so the window jumps on the first frame of the new shot and never glides
    across the gap between two analysed frames."""
    out: list[tuple[float, float]] = []
    for i, piece in enumerate(pieces):
        if not piece:
            continue
        body = list(piece)
        if i > 0 and out:
            cut = cuts[i - 1]
            out.append((cut, out[-1][1]))
            body = [(cut, body[0][1]), *(k for k in body if k[0] > cut)]
        out.extend(body)
    return tuple(out)


def value_at(keys: Keys, t: float) -> float:
    """The curve's value at `t` (what the ffmpeg expression computes)."""
    if not keys:
        return 0.0
    if t < keys[0][0]:
        return keys[0][1]
    for (t0, v0), (t1, v1) in itertools.pairwise(keys):
        if t < t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v0
    return keys[-1][1]


def expression(keys: Keys) -> str:
    """An ffmpeg expression of `t` that evaluates the curve: a balanced tree of comparisons over
    the curve's intervals (depth log2 n), each interval a clipped linear ramp."""
    if not keys:
        return "0"
    spans = [(t0, t1, v0, v1) for (t0, v0), (t1, v1) in itertools.pairwise(keys) if t1 - t0 > 1e-6]
    if not spans:
        return _num(keys[-1][1])
    # Before the first key the first ramp is clipped to its start value, and after the last to its
    # end value; a cut (two keys at one time) separates two ramps with no span between them.
    return _tree(spans, 0, len(spans) - 1)


def _tree(spans: list[tuple[float, float, float, float]], lo: int, hi: int) -> str:
    if lo == hi:
        t0, t1, v0, v1 = spans[lo]
        if abs(v1 - v0) < 0.05:
            return _num(v0)
        return f"{_num(v0)}+({_num(v1 - v0)})*clip((t-{t0:.3f})/{t1 - t0:.3f},0,1)"
    mid = (lo + hi + 1) // 2
    return f"if(lt(t,{spans[mid][0]:.3f}),{_tree(spans, lo, mid - 1)},{_tree(spans, mid, hi)})"


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text
