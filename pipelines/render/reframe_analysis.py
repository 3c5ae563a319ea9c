"""One decoding pass over a clip for reframing: faces, mouth motion, scene cuts, motion, speech.

A single ffmpeg process decodes the clip once and writes two small grey streams:

- analysis frames (short side 180 px, 6 fps), read from a pipe one frame at a time. The face
  detector scans the whole frame once a second (a full Haar scan is the expensive step); in
  between, each known face is followed by template matching in a small region around it (a
  fraction of a millisecond), and mouth-region motion is measured on every frame (speech moves
  the lips several times a second). A followed face that the next scans do not confirm is
  dropped, so a false hit lives a second or two at most;
- tiny colour frames (short side 36 px) at 25 fps, written to a temporary file: scene cuts are
  found on these to the frame (colour, so a cut between two shots of similar brightness is
  seen too), and the motion centres of the no-face fallback come from them.

Nothing holds the clip: memory is a few frames plus one small record per face per frame. The
audio's short-time energy (for "who is speaking") comes from a second, audio-only decode.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from clipforge.media.audio import decode_span
from clipforge.media.ffmpeg import ffmpeg_read
from models.faces import FaceBox, FaceDetector, iou
from pipelines.render.reframe_tracks import FaceDetection

FloatArray = npt.NDArray[np.float64]

ANALYSIS_FPS = 6.0
SCAN_EVERY = 6  # analysis frames between full face scans: once a second
PROFILE_SCAN_EVERY = 12  # turned heads (profile cascade, when no frontal face): every 2 s
_FOLLOW_MARGIN = 0.4  # template search region around a face, in face sizes
_FOLLOW_MIN_SCORE = 0.6  # normalised correlation below which a followed face is lost
_UNCONFIRMED_SCANS = 2  # scans a followed face may go without the detector finding it again
ANALYSIS_SHORT_SIDE = 180
TINY_FPS = 25.0
TINY_SHORT_SIDE = 36
MOTION_FPS = 2.0
AUDIO_RATE = 8000
_CELLS = 3  # scene cuts: a 3x3 grid of grey histograms
_CUT_CELLS = (
    7  # cells that must change for a cut (a distractor covering half the picture is not one)
)
_CUT_DISTANCE = 0.35  # total-variation distance between two cell histograms that counts as changed
_MIN_SCENE_S = 0.5
_ANALYSIS_TIMEOUT_S = 1800.0  # as long as the render of the same clip may take


@dataclass(slots=True)
class _Known:
    """A face being followed between scans (analysis pixels)."""

    box: FaceBox
    template: np.ndarray
    confirmed_at: int  # analysis frame of the last detector hit


@dataclass(slots=True)
class MouthSample:
    """Mouth-region motion of one detected face on one analysis frame."""

    frame: int
    detection: int  # index into ClipAnalysis.detections
    value: float


@dataclass(slots=True)
class ClipAnalysis:
    """What one pass over the clip found (times in seconds from the clip start).

    Attributes:
        times: analysis frame times (ANALYSIS_FPS).
        detections: faces found, boxes in source pixels.
        mouths: mouth motion per face per analysis frame.
        cuts: scene cut times (the first frame of each new shot).
        motion: (time, centre x 0..1 or NaN, centre y 0..1 or NaN) of frame-to-frame change at
            MOTION_FPS; NaN where nothing moved.
        energy: speech energy 0..1 at each analysis time (zeros without audio).
        scenes: shot index of each analysis frame.
    """

    times: FloatArray
    detections: list[FaceDetection] = field(default_factory=list)
    mouths: list[MouthSample] = field(default_factory=list)
    cuts: list[float] = field(default_factory=list)
    motion: list[tuple[float, float, float]] = field(default_factory=list)
    energy: FloatArray = field(default_factory=lambda: np.zeros(0))
    scenes: list[int] = field(default_factory=list)


def scaled_size(src_w: int, src_h: int, short_side: int) -> tuple[int, int]:
    """Even width and height with the given short side and the source's aspect ratio."""
    if src_w >= src_h:
        return max(2, round(src_w * short_side / src_h / 2) * 2), short_side
    return short_side, max(2, round(src_h * short_side / src_w / 2) * 2)


def analyse(
    src: Path,
    start_s: float,
    duration_s: float,
    src_size: tuple[int, int],
    *,
    faces: bool = True,
    detector: FaceDetector | None = None,
) -> ClipAnalysis:
    """Decode the clip once and measure everything the planner needs."""
    src_w, src_h = src_size
    aw, ah = scaled_size(src_w, src_h, ANALYSIS_SHORT_SIDE)
    tw, th = scaled_size(src_w, src_h, TINY_SHORT_SIDE)
    with tempfile.TemporaryDirectory(prefix="clipforge-reframe-") as tmp:
        tiny_path = Path(tmp) / "tiny.rgb"
        graph = (
            f"[0:v:0]split=2[a][b];[a]fps={ANALYSIS_FPS},scale={aw}:{ah}:flags=area,format=gray[fa];"
            f"[b]fps={TINY_FPS},scale={tw}:{th}:flags=area,format=rgb24[fb]"
        )
        args = [
            "-ss",
            f"{start_s:.3f}",
            # An input option: an output -t would bound only the first of the two outputs, and
            # the second would decode the rest of the source.
            "-t",
            f"{duration_s:.3f}",
            "-i",
            str(src),
            "-filter_complex",
            graph,
            "-map",
            "[fa]",
            "-f",
            "rawvideo",
            "pipe:1",
            "-map",
            "[fb]",
            "-f",
            "rawvideo",
            str(tiny_path),
        ]
        scale = src_w / aw
        result = ClipAnalysis(times=np.zeros(0))
        times: list[float] = []
        det = detector if detector is not None or not faces else FaceDetector()
        previous: np.ndarray | None = None
        known: list[_Known] = []
        frames = ffmpeg_read(args, aw * ah, timeout_s=_ANALYSIS_TIMEOUT_S, step="reframe_analysis")
        for k, data in enumerate(frames):
            gray = np.frombuffer(data, dtype=np.uint8).reshape(ah, aw)
            t = k / ANALYSIS_FPS
            times.append(t)
            if det is not None:
                known = _faces(det, gray, known, k)
            for face in known:
                d = _detection(k, t, face.box, scale, detected=face.confirmed_at == k)
                result.detections.append(d)
                if previous is not None:
                    value = mouth_motion(previous, gray, d.box, scale)
                    index = len(result.detections) - 1
                    result.mouths.append(MouthSample(frame=k, detection=index, value=value))
            previous = gray
        tiny = _read_tiny(tiny_path, tw, th)
    result.times = np.asarray(times, dtype=np.float64)
    result.cuts = scene_cuts(tiny, TINY_FPS)
    result.motion = motion_centres(tiny.mean(axis=3, dtype=np.float32), TINY_FPS)
    result.scenes = [int(np.searchsorted(result.cuts, t, side="right")) for t in times]
    result.detections = [
        replace(d, scene=int(np.searchsorted(result.cuts, d.t, side="right")))
        for d in result.detections
    ]
    result.energy = speech_energy(src, start_s, duration_s, result.times)
    return result


def _faces(det: FaceDetector, gray: np.ndarray, known: list[_Known], k: int) -> list[_Known]:
    """Faces on analysis frame `k`: the known ones followed by template matching, and on scan
    frames the detector's hits (which confirm the followed faces they overlap)."""
    followed = [f for f in (_follow(gray, face) for face in known) if f is not None]
    if k % SCAN_EVERY != 0:
        return followed
    hits = det.detect(gray, profile=k % PROFILE_SCAN_EVERY == 0)
    out = [_Known(box, _patch(gray, box), k) for box in hits]
    for face in followed:
        overlaps = any(iou(face.box, hit) > 0.3 for hit in hits)
        if not overlaps and k - face.confirmed_at <= _UNCONFIRMED_SCANS * SCAN_EVERY:
            out.append(face)
    return out


def _patch(gray: np.ndarray, box: FaceBox) -> np.ndarray:
    x, y = int(box.x), int(box.y)
    return gray[y : y + int(box.h), x : x + int(box.w)].copy()


def _follow(gray: np.ndarray, face: _Known) -> _Known | None:
    """The face's new position: best normalised correlation of its template in a region a
    little larger than the face; None when it no longer matches (turned away, left, covered)."""
    box, template = face.box, face.template
    th, tw = template.shape
    height, width = gray.shape
    x0 = max(0, int(box.x - _FOLLOW_MARGIN * box.w))
    y0 = max(0, int(box.y - _FOLLOW_MARGIN * box.h))
    x1 = min(width, int(box.x + box.w * (1 + _FOLLOW_MARGIN)) + 1)
    y1 = min(height, int(box.y + box.h * (1 + _FOLLOW_MARGIN)) + 1)
    if x1 - x0 <= tw or y1 - y0 <= th or tw < 4 or th < 4:
        return None
    scores = cv2.matchTemplate(gray[y0:y1, x0:x1], template, cv2.TM_CCOEFF_NORMED)
    _, best, _, (mx, my) = cv2.minMaxLoc(scores)
    if best < _FOLLOW_MIN_SCORE:
        return None
    moved = FaceBox(float(x0 + mx), float(y0 + my), box.w, box.h, box.score, box.profile)
    return _Known(moved, template, face.confirmed_at)


def _detection(
    frame: int, t: float, box: FaceBox, scale: float, *, detected: bool
) -> FaceDetection:
    cx, cy = (box.x + box.w / 2) * scale, (box.y + box.h / 2) * scale
    box_src = (cx, cy, box.w * scale, box.h * scale)
    return FaceDetection(frame=frame, t=t, box=box_src, scene=0, detected=detected)


def _read_tiny(path: Path, width: int, height: int) -> np.ndarray:
    """(frames, height, width, 3) RGB frames."""
    if not path.exists():
        return np.zeros((0, height, width, 3), dtype=np.uint8)
    raw = np.fromfile(path, dtype=np.uint8)
    size = width * height * 3
    return raw[: raw.size // size * size].reshape(-1, height, width, 3)


def mouth_motion(
    previous: np.ndarray, current: np.ndarray, box: tuple[float, ...], scale: float
) -> float:
    """Motion in the lower-middle of a face box minus motion in its upper part.

    Speech moves the mouth and little else; a head that nods or sways moves both parts alike, so
    the difference isolates the lips. Box in source pixels, frames in analysis pixels.
    """
    cx, cy, w, h = (v / scale for v in box)
    height, width = current.shape

    def region(y0: float, y1: float, x0: float, x1: float) -> float:
        top, bottom = int(max(0, cy + y0 * h)), int(min(height, cy + y1 * h))
        left, right = int(max(0, cx + x0 * w)), int(min(width, cx + x1 * w))
        if bottom <= top or right <= left:
            return 0.0
        a = previous[top:bottom, left:right].astype(np.int16)
        b = current[top:bottom, left:right].astype(np.int16)
        return float(np.abs(a - b).mean())

    # Box-relative offsets from the centre: the mouth sits in the lower third of a Haar face box.
    mouth = region(0.1, 0.5, -0.25, 0.25)
    upper = region(-0.4, -0.05, -0.3, 0.3)
    return max(0.0, mouth - upper)


def scene_cuts(tiny: np.ndarray, fps: float) -> list[float]:
    """Times of hard cuts: most cells of a 3x3 grid change their colour histograms at once.

    A moving object or a busy distractor changes some cells; a cut changes nearly all of them.
    Cuts closer than half a second to the previous one are ignored (flashes, fades). `tiny` is
    (frames, h, w, channels) or (frames, h, w) for grey.
    """
    if len(tiny) < 2:
        return []
    channels = tiny[..., None] if tiny.ndim == 3 else tiny
    # Total variation distance per cell and channel, averaged over the channels.
    distance = np.mean(
        [
            0.5 * np.abs(np.diff(_cell_histograms(channels[..., c]), axis=0)).sum(axis=2)
            for c in range(channels.shape[-1])
        ],
        axis=0,
    )
    changed = (distance > _CUT_DISTANCE).sum(axis=1)
    cuts: list[float] = []
    for i in np.flatnonzero(changed >= _CUT_CELLS):
        t = float(i + 1) / fps
        if not cuts or t - cuts[-1] >= _MIN_SCENE_S:
            cuts.append(round(t, 3))
    return cuts


def _cell_histograms(frames: np.ndarray, bins: int = 16) -> np.ndarray:
    """(frames, cells, bins) normalised grey histograms of a 3x3 grid, for all frames at once."""
    n, height, width = frames.shape
    rows = np.minimum(np.arange(height) * _CELLS // height, _CELLS - 1)
    cols = np.minimum(np.arange(width) * _CELLS // width, _CELLS - 1)
    cell = (rows[:, None] * _CELLS + cols[None, :]).ravel()
    sizes = np.bincount(cell, minlength=_CELLS * _CELLS).astype(np.float64)
    codes = cell[None, :] * bins + (frames.reshape(n, -1) >> 4).astype(np.int64)
    codes += (np.arange(n) * _CELLS * _CELLS * bins)[:, None]
    counts = np.bincount(codes.ravel(), minlength=n * _CELLS * _CELLS * bins)
    return counts.reshape(n, _CELLS * _CELLS, bins) / sizes[None, :, None]


def motion_centres(tiny: np.ndarray, fps: float) -> list[tuple[float, float, float]]:
    """(time, x 0..1, y 0..1) centres of frame-to-frame change at MOTION_FPS (the fallback when
    no face is found; the same measure as the motion-only path, on the same pass's grey frames)."""
    step = max(1, round(fps / MOTION_FPS))
    picked = tiny[::step].astype(np.float32)
    out: list[tuple[float, float, float]] = []
    if len(picked) < 2:
        return out
    height, width = picked.shape[1:]
    for i in range(1, len(picked)):
        energy = np.abs(picked[i] - picked[i - 1])
        total = float(energy.sum())
        t = i * step / fps
        if total <= 2.0 * energy.size:  # too little change to be real motion
            out.append((t, float("nan"), float("nan")))
            continue
        cx = float((energy.sum(axis=0) * np.arange(width)).sum() / total) / max(1, width - 1)
        cy = float((energy.sum(axis=1) * np.arange(height)).sum() / total) / max(1, height - 1)
        out.append((t, cx, cy))
    return out


def speech_energy(src: Path, start_s: float, duration_s: float, times: FloatArray) -> FloatArray:
    """Short-time audio energy at `times` (0.2 s windows), scaled to 0..1 by its 95th
    percentile; zeros when the clip has no audio."""
    pcm = decode_span(src, start_s, duration_s, AUDIO_RATE, np.int16)
    if pcm is None or pcm.size == 0 or times.size == 0:
        return np.zeros(times.shape)
    samples = pcm.astype(np.float64)
    half = int(0.1 * AUDIO_RATE)
    power = np.concatenate([[0.0], np.cumsum(samples**2)])
    centres = (times * AUDIO_RATE).astype(np.int64)
    lo = np.clip(centres - half, 0, samples.size)
    hi = np.clip(centres + half, 0, samples.size)
    rms = np.sqrt((power[hi] - power[lo]) / np.maximum(1, hi - lo))
    ref = float(np.percentile(rms, 95))
    if ref <= 1.0:  # digital silence
        return np.zeros(times.shape)
    return np.asarray(np.clip(rms / ref, 0.0, 1.0), dtype=np.float64)
