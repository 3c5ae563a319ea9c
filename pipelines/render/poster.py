"""Poster frame (thumbnail) of a rendered clip: a sharp, open-eyed face, else the clip's peak.

A frame at a fixed time (the old 1 s) often catches a blink, a grimace or motion blur. Here the
candidates are the clip's keyframes (render_clip forces one every `KEYFRAME_S`), decoded alone
(PyAV skips every other frame, so a 45 s clip costs about 20 decodes). Each is scored:

1. A face (the reframing's Haar detector, frontal only) with two open eyes: OpenCV's Haar eye
   cascade finds open eyes and, being trained on them, mostly misses closed ones; it runs on the
   upper part of the face box only. Among those, the sharpest face (variance of the Laplacian
   inside the face box) wins.
2. Else a face with one eye found, sharpest first.
3. Else the clip's peak: the sharpest frame (whole picture) within `PEAK_WINDOW_S` of the loudest
   second of the clip's audio, where the moment the clip was chosen for usually is.

The chosen keyframe is then written as a JPEG at full size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from clipforge.errors import MediaError
from clipforge.media import decode_audio
from models.faces import DetectorOptions, FaceDetector
from models.registry import face_cascade_dir

KEYFRAME_S = 2.0
WIDTH = 360
FACE_WIDTH = 160
PEAK_WINDOW_S = 4.0
EYE_CASCADE = "haarcascade_eye.xml"

Gray = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One scored keyframe.

    Attributes:
        t: its time in the clip (seconds).
        eyes: open eyes found in its largest face (0 when no face).
        face: whether a face was found.
        sharpness: variance of the Laplacian in the face box, or of the whole frame without one.
    """

    t: float
    face: bool
    eyes: int
    sharpness: float


@dataclass(frozen=True, slots=True)
class Poster:
    """The chosen poster frame.

    Attributes:
        t: time in the clip (seconds).
        reason: `face` (a sharp face with open eyes), `face-one-eye` or `peak`.
        candidates: every keyframe scored, in time order.
    """

    t: float
    reason: str
    candidates: tuple[Candidate, ...]


class _Eyes:
    def __init__(self) -> None:
        self._cascade = cv2.CascadeClassifier(str(face_cascade_dir() / EYE_CASCADE))
        if self._cascade.empty():
            raise MediaError(f"could not load OpenCV's {EYE_CASCADE}")

    def count(self, face: Gray) -> int:
        """Open eyes (at most 2) in a face crop `FACE_WIDTH` wide: searched in its upper 60%
        (the mouth and nostrils below give false hits)."""
        region = np.ascontiguousarray(face[: int(0.6 * face.shape[0])])
        side = FACE_WIDTH // 8  # an eye is about a fifth of the face's width
        eyes = self._cascade.detectMultiScale(
            region, scaleFactor=1.1, minNeighbors=5, minSize=(side, side)
        )
        return min(2, len(eyes))


def sharpness(gray: Gray) -> float:
    """Variance of the Laplacian: high for in-focus detail, low for blur."""
    if gray.size == 0:
        return 0.0
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def keyframes(clip: Path) -> list[tuple[float, Gray]]:
    """(time, grey picture at full size) of every keyframe of `clip`."""
    out: list[tuple[float, Gray]] = []
    try:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"
            for frame in container.decode(stream):
                if frame.time is not None:
                    gray = frame.to_ndarray(format="gray")
                    out.append((float(frame.time), np.ascontiguousarray(gray, dtype=np.uint8)))
    except (av.FFmpegError, IndexError) as exc:
        raise MediaError(f"cannot read keyframes of {clip.name}: {exc}") from None
    return out


def loudest_second(clip: Path) -> float | None:
    """Middle of the loudest one-second stretch of the clip's audio; None without audio."""
    rate = 16000
    try:
        samples = decode_audio(clip, rate)
    except MediaError:
        return None
    if samples.size < rate:
        return None
    # Energy of every one-second window from a running sum (a direct convolution with a
    # one-second kernel would cost seconds on a long clip).
    total = np.concatenate(([0.0], np.cumsum(np.square(samples.astype(np.float64)))))
    energy = total[rate:] - total[:-rate]
    return (int(energy.argmax()) + rate / 2) / rate


def _resize(gray: Gray, width: int) -> Gray:
    height = max(1, round(gray.shape[0] * width / gray.shape[1]))
    return np.asarray(cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA), np.uint8)


def score_frames(frames: list[tuple[float, Gray]]) -> list[Candidate]:
    """Face, open eyes and sharpness of each frame. Faces are found on a copy `WIDTH` wide;
    eyes and sharpness are measured on the face cut from the full picture and scaled to
    `FACE_WIDTH`, so big and small faces compare alike and eyes are large enough to detect."""
    faces = FaceDetector(DetectorOptions(profile=False))
    eyes = _Eyes()
    out = []
    for t, gray in frames:
        small = _resize(gray, WIDTH)
        found = faces.detect(small, profile=False)
        if not found:
            out.append(Candidate(t, False, 0, sharpness(small)))
            continue
        face = found[0]  # the largest
        k = gray.shape[1] / WIDTH
        x0, y0 = max(0, int(face.x * k)), max(0, int(face.y * k))
        crop = gray[y0 : int((face.y + face.h) * k), x0 : int((face.x + face.w) * k)]
        if crop.size == 0:
            out.append(Candidate(t, False, 0, sharpness(small)))
            continue
        face_gray = _resize(crop, FACE_WIDTH)
        out.append(Candidate(t, True, eyes.count(face_gray), sharpness(face_gray)))
    return out


def choose(
    candidates: list[Candidate], peak_s: Callable[[], float | None]
) -> tuple[Candidate, str]:
    """The best candidate and why (rules in the module doc); `peak_s` is asked only when no
    frame shows a face with an eye open."""
    for eyes, reason in ((2, "face"), (1, "face-one-eye")):
        with_eyes = [c for c in candidates if c.face and c.eyes >= eyes]
        if with_eyes:
            return max(with_eyes, key=lambda c: c.sharpness), reason
    peak = peak_s()
    middle = peak if peak is not None else candidates[len(candidates) // 2].t
    near = [c for c in candidates if abs(c.t - middle) <= PEAK_WINDOW_S] or candidates
    return max(near, key=lambda c: c.sharpness), "peak"


def choose_poster(clip: Path) -> Poster:
    """Pick the poster frame of a rendered clip (see the module doc)."""
    scored = score_frames(keyframes(clip))
    if not scored:
        raise MediaError(f"{clip.name} has no decodable keyframe")
    best, reason = choose(scored, lambda: loudest_second(clip))
    return Poster(best.t, reason, tuple(scored))
