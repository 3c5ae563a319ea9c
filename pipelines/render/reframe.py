"""Subject-aware reframing: where the crop window(s) go, and the ffmpeg filter that puts them there.

Layouts (the `layout` option of an export):

- `center`: a fixed centre crop (no analysis).
- `speaker`: one window follows the subject: the only face, or the active speaker among several
  (pipelines/render/reframe_speaker.py). A switch to a face further than a quarter of the window away is
  a clean cut (as an editor cuts a multi-camera podcast); small moves glide.
- `split`: two windows stacked (top/bottom halves of a portrait output; left/right of a landscape
  one), one per face, when one shot shows two faces for at least half the clip; otherwise as
  `speaker`.
- `auto`: `split` when two people alternate quickly, else `speaker`. The rule: two faces are seen
  together in at least 60% of the clip, they are too far apart for one window to hold both, and
  the active speaker changes at least 3 times with a median turn of at most 4 s. Longer turns
  read better as single-speaker shots that cut between the two.

Fallbacks, shot by shot: no face in a shot -> the window follows the motion in the picture (as
the motion-only path does) -> nothing moving -> centred. The window never leaves the picture:
positions are clamped to the picture and the expression interpolates between clamped keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import median

import numpy as np

from clipforge.types import LAYOUTS
from pipelines.render.reframe_analysis import ANALYSIS_FPS, SCAN_EVERY, ClipAnalysis, analyse
from pipelines.render.reframe_path import (
    Keys,
    expression,
    join_pieces,
    smooth_path,
    to_keys,
    value_at,
)
from pipelines.render.reframe_speaker import (
    SpeakerChoice,
    choose_speakers,
    turn_stats,
    turns_from_words,
)
from pipelines.render.reframe_tracks import Box, Track, link

HEADROOM = 0.42  # a face's centre sits this far down a window that is shorter than the picture
SWITCH_CUT = 0.25  # a speaker switch moving the window by more than this (in window sizes) cuts
SPLIT_MIN_TOGETHER = 0.6
SPLIT_MIN_SWITCHES = 3
SPLIT_MAX_MEDIAN_TURN_S = 4.0
SPLIT_FACE_SCALE = 3.0  # a split window is about three face heights tall
#: Scaler for the window -> output step. Exports scale small sources up to the preset size
#: (pipelines/render/clip.py PRESETS); lanczos keeps edges and text sharp there (bicubic blurs a 3.6x
#: upscale visibly), and its cost is small beside x264's.
SCALE_FLAGS = "lanczos"


@dataclass(frozen=True, slots=True)
class CropWindow:
    """One crop window over the clip.

    Attributes:
        w, h: window size in source pixels (constant).
        x, y: keys of the left and top edge over clip time (piecewise linear; equal times = cut).
    """

    w: int
    h: int
    x: Keys
    y: Keys

    def at(self, t: float) -> tuple[float, float]:
        """Left and top edge at clip time `t` (what the emitted filter applies)."""
        return value_at(self.x, t), value_at(self.y, t)


@dataclass(frozen=True, slots=True)
class ReframePlan:
    """Where the window(s) go.

    Attributes:
        layout: the layout rendered: `speaker`, `split` or `center`.
        source: what the windows follow: `faces`, `motion` or `center`.
        windows: one window, or two for `split` (top/left first).
        cuts: clip times where a window may jump (scene cuts and speaker-switch cuts).
        tracks: number of face tracks found.
        face_spans: the vertical extent (top, bottom) of each tracked face seen in the output,
            as shares of the output height, over the whole clip; captions keep out of them.
    """

    layout: str
    source: str
    windows: tuple[CropWindow, ...]
    cuts: tuple[float, ...] = ()
    tracks: int = 0
    face_spans: tuple[tuple[float, float], ...] = ()


def check_layout(layout: str) -> str:
    """`layout` if it is known, else ValueError naming the choices."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    return layout


def centre_plan(src_size: tuple[int, int], crop: tuple[int, int]) -> ReframePlan:
    """A fixed window in the middle of the picture."""
    (src_w, src_h), (w, h) = src_size, crop
    x, y = float((src_w - w) // 2), float((src_h - h) // 2)
    return ReframePlan("center", "center", (CropWindow(w, h, ((0.0, x),), ((0.0, y),)),))


def plan_reframe(
    src: Path,
    *,
    start_s: float,
    duration_s: float,
    src_size: tuple[int, int],
    crop: tuple[int, int],
    out_size: tuple[int, int],
    layout: str = "auto",
    words: Sequence[object] | None = None,
    analysis: ClipAnalysis | None = None,
) -> ReframePlan:
    """Plan the crop window(s) of one clip.

    Args:
        src: the source video.
        start_s / duration_s: the clip within it.
        src_size: source picture size (display orientation).
        crop: the largest window of the output's aspect ratio (render.crop_size).
        out_size: output picture size (for the split halves' aspect ratio).
        layout: one of LAYOUTS.
        words: transcript words with source times; a `speaker` attribute on them (int or None)
            gives speaker turns.
        analysis: a precomputed `analyse()` result (tests, benchmarks); decoded when None.
    """
    check_layout(layout)
    if layout == "center" or (tuple(crop) == tuple(src_size) and layout != "split"):
        return centre_plan(src_size, crop)  # nothing to follow when the window is the picture
    a = analysis or analyse(src, start_s, duration_s, src_size)
    tracks = link(a.detections, scan_period_s=SCAN_EVERY / ANALYSIS_FPS)
    turns = turns_from_words(words or (), start_s, duration_s)
    choice = choose_speakers(a, tracks, turns)
    pair = _face_pair(a, tracks)
    if pair is not None and layout in ("split", "auto"):
        half = _half_size(out_size)
        split_crop = _split_crop(src_size, half, tracks, pair)
        if layout == "split" or _alternating(a, choice, tracks, pair, crop[0]):
            windows = tuple(_follow_window(a, src_size, split_crop, tracks[i]) for i in pair)
            spans = face_spans(a.times, tracks, windows, out_size)
            return ReframePlan("split", "faces", windows, tuple(a.cuts), len(tracks), spans)
    plan = _speaker_plan(a, src_size, crop, tracks, choice)
    return replace(plan, face_spans=face_spans(a.times, tracks, plan.windows, out_size))


def face_spans(
    times: np.ndarray,
    tracks: Sequence[Track],
    windows: Sequence[CropWindow],
    out_size: tuple[int, int],
) -> tuple[tuple[float, float], ...]:
    """Where faces appear in the output: per track and window, the top and bottom of the face
    box (as shares of the output height) over every analysed time its centre is inside the
    window. Two windows are the stacked halves of a portrait split (the top half first) or the
    side-by-side halves of a landscape one."""
    stacked = len(windows) == 2 and out_size[0] <= out_size[1]
    spans: list[tuple[float, float]] = []
    for k, window in enumerate(windows):
        offset, share = (0.5 * k, 0.5) if stacked else (0.0, 1.0)
        for track in tracks:
            tops, bottoms = [], []
            for t in times:
                box = track.box_at(float(t), hold_s=0.6)
                if box is None:
                    continue
                wx, wy = window.at(float(t))
                cx, cy, _, bh = box
                if not wx <= cx <= wx + window.w:
                    continue
                tops.append((cy - bh / 2 - wy) / window.h)
                bottoms.append((cy + bh / 2 - wy) / window.h)
            if tops:
                top, bottom = max(0.0, min(tops)), min(1.0, max(bottoms))
                if bottom > top:
                    spans.append((offset + share * top, offset + share * bottom))
    return tuple(sorted(spans))


def _speaker_plan(
    a: ClipAnalysis,
    src_size: tuple[int, int],
    crop: tuple[int, int],
    tracks: Sequence[Track],
    choice: SpeakerChoice,
) -> ReframePlan:
    src_w, src_h = src_size
    w, h = crop
    times = a.times
    xs, ys = np.full(times.size, np.nan), np.full(times.size, np.nan)
    motion_t = np.asarray([m[0] for m in a.motion])
    used_faces = used_motion = False
    for k, t in enumerate(times):
        subject = choice.subjects[k]
        if subject is not None:
            box = _box(tracks[subject], float(t))
            xs[k], ys[k] = _target(box, w, h)
            used_faces = True
        elif motion_t.size:
            _, mx, my = a.motion[int(np.abs(motion_t - t).argmin())]
            if not np.isnan(mx):
                xs[k], ys[k] = mx * src_w - w / 2, my * src_h - h / 2
                used_motion = True
    cuts = sorted({*a.cuts, *_switch_cuts(times, choice, xs, ys, w, h)})
    window = _window(times, xs, ys, src_size, crop, cuts)
    source = "faces" if used_faces else "motion" if used_motion else "center"
    return ReframePlan("speaker", source, (window,), tuple(cuts), len(tracks))


def _follow_window(
    a: ClipAnalysis, src_size: tuple[int, int], crop: tuple[int, int], track: Track
) -> CropWindow:
    """A window that follows one face (held where it is not seen)."""
    w, h = crop
    targets = [_target(_box(track, float(t)), w, h) for t in a.times]
    xs = np.asarray([p[0] for p in targets])
    ys = np.asarray([p[1] for p in targets])
    return _window(a.times, xs, ys, src_size, crop, list(a.cuts))


def _window(
    times: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    src_size: tuple[int, int],
    crop: tuple[int, int],
    cuts: Sequence[float],
) -> CropWindow:
    (src_w, src_h), (w, h) = src_size, crop
    keys: list[Keys] = []
    for targets, span, size in ((xs, src_w - w, w), (ys, src_h - h, h)):
        if times.size == 0:  # nothing decoded (a clip shorter than one analysis frame)
            keys.append(((0.0, float(max(0, span) // 2)),))
            continue
        path = smooth_path(times, targets, span=max(0, span), crop=size, cuts=cuts)
        keys.append(_keys(times, path, cuts))
    return CropWindow(w, h, keys[0], keys[1])


def _keys(times: np.ndarray, path: np.ndarray, cuts: Sequence[float]) -> Keys:
    """Keys per shot, joined with clean cuts."""
    bounds = [0, *(int(np.searchsorted(times, c - 1e-9)) for c in cuts), times.size]
    pieces: list[Keys] = []
    piece_cuts: list[float] = []
    for i in range(len(bounds) - 1):
        lo, hi = bounds[i], bounds[i + 1]
        if hi <= lo:
            continue
        if pieces:
            piece_cuts.append(cuts[i - 1])  # the cut that starts this piece
        pieces.append(to_keys(times[lo:hi], path[lo:hi]))
    return join_pieces(pieces, piece_cuts)


def _box(track: Track, t: float) -> Box:
    box = track.box_at(t, hold_s=float("inf"))
    assert box is not None  # an infinite hold always answers
    return box


def _target(box: Box, w: int, h: int) -> tuple[float, float]:
    cx, cy, _, _ = box
    return cx - w / 2, cy - HEADROOM * h


def _switch_cuts(
    times: np.ndarray, choice: SpeakerChoice, xs: np.ndarray, ys: np.ndarray, w: int, h: int
) -> list[float]:
    cuts = []
    for k in choice.switches():
        if abs(xs[k] - xs[k - 1]) > SWITCH_CUT * w or abs(ys[k] - ys[k - 1]) > SWITCH_CUT * h:
            cuts.append(float(times[k]))  # exactly a sample time: that sample starts the new shot
    return cuts


def _face_pair(a: ClipAnalysis, tracks: Sequence[Track]) -> tuple[int, int] | None:
    """The two tracks of one shot seen together longest, left one first, if together for at
    least half the clip."""
    if len(tracks) < 2 or a.times.size == 0:
        return None
    best: tuple[int, int] | None = None
    best_frames = 0
    seen = [
        np.asarray([tr.box_at(float(t), hold_s=0.6) is not None for t in a.times]) for tr in tracks
    ]
    for i in range(len(tracks)):
        for j in range(i + 1, len(tracks)):
            if tracks[i].scene != tracks[j].scene:
                continue
            together = int((seen[i] & seen[j]).sum())
            if together > best_frames:
                best, best_frames = (i, j), together
    if best is None or best_frames < 0.5 * a.times.size:
        return None
    i, j = best
    return (i, j) if tracks[i].mean_box()[0] <= tracks[j].mean_box()[0] else (j, i)


def _alternating(
    a: ClipAnalysis,
    choice: SpeakerChoice,
    tracks: Sequence[Track],
    pair: tuple[int, int],
    crop_w: int,
) -> bool:
    """The `auto` rule for split (see the module docstring)."""
    i, j = pair
    left, right = tracks[i].mean_box(), tracks[j].mean_box()
    together_w = (right[0] + right[2] / 2) - (left[0] - left[2] / 2)
    if together_w <= crop_w:
        return False  # one window holds both faces
    seen = [
        np.asarray([tr.box_at(float(t), hold_s=0.6) is not None for t in a.times])
        for tr in (tracks[i], tracks[j])
    ]
    if (seen[0] & seen[1]).mean() < SPLIT_MIN_TOGETHER:
        return False
    dt = 1.0 / ANALYSIS_FPS
    switches, median_turn = turn_stats(choice, dt)
    return switches >= SPLIT_MIN_SWITCHES and median_turn <= SPLIT_MAX_MEDIAN_TURN_S


def _half_size(out_size: tuple[int, int]) -> tuple[int, int]:
    out_w, out_h = out_size
    return (out_w, out_h // 2 // 2 * 2) if out_w <= out_h else (out_w // 2 // 2 * 2, out_h)


def _split_crop(
    src_size: tuple[int, int], half: tuple[int, int], tracks: Sequence[Track], pair: tuple[int, int]
) -> tuple[int, int]:
    """Window size of a split half: about SPLIT_FACE_SCALE face heights tall, the half's aspect
    ratio, inside the picture."""
    src_w, src_h = src_size
    hw, hh = half
    face_h = max(median(d.box[3] for d in tracks[i].detections) for i in pair)
    h = min(float(src_h), max(0.4 * src_h, SPLIT_FACE_SCALE * face_h))
    w = h * hw / hh
    if w > src_w:
        w, h = float(src_w), src_w * hh / hw
    return int(w) // 2 * 2, int(h) // 2 * 2


def video_filter(plan: ReframePlan, out_size: tuple[int, int], source: str = "[0:v:0]") -> str:
    """The filter graph from `source` to the reframed picture (unlabelled, so more filters can
    be chained after it)."""
    out_w, out_h = out_size
    if len(plan.windows) == 1:
        return (
            f"{source}{_crop(plan.windows[0])},scale={out_w}:{out_h}:flags={SCALE_FLAGS},setsar=1"
        )
    hw, hh = _half_size(out_size)
    stack = "vstack" if out_w <= out_h else "hstack"
    # The halves may round one pixel short of the output; pad keeps the declared size.
    first, second = plan.windows
    return (
        f"{source}split=2[rf0][rf1];"
        f"[rf0]{_crop(first)},scale={hw}:{hh}:flags={SCALE_FLAGS},setsar=1[rt0];"
        f"[rf1]{_crop(second)},scale={hw}:{hh}:flags={SCALE_FLAGS},setsar=1[rt1];"
        f"[rt0][rt1]{stack}=inputs=2,pad={out_w}:{out_h}:0:0,setsar=1"
    )


def _crop(window: CropWindow) -> str:
    return f"crop={window.w}:{window.h}:'{expression(window.x)}':'{expression(window.y)}'"
