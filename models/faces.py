"""Face detection for reframing: OpenCV's Haar cascades, which ship inside the OpenCV wheel.

Why Haar cascades: they are the only face detector whose weights come inside a PyPI wheel that
installs beside our numpy/torch pins (MediaPipe's current wheels no longer bundle their face
models; OpenCV's DNN detectors need a separate download). They are fast on small frames (a few ms
for a 320x180 grey frame) and good at the faces that matter for reframing: speakers looking
roughly at the camera. The profile cascade (run on the frame and its mirror image, since it only
knows one side) covers heads turned away, and runs only where the frontal one found nothing, so
it costs little on talking-head footage. Detections are noisy frame to frame; the planner links
them into tracks (pipelines/render/reframe_tracks.py), which removes most false positives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from clipforge.errors import ConfigError
from models.registry import FACE_CASCADES, face_cascade_dir, face_detector_info
from models.types import ModelInfo

GrayImage = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class FaceBox:
    """One detected face, in pixels of the image it was found in.

    Attributes:
        x, y, w, h: the box (left, top, width, height).
        score: the cascade's neighbour count (how many overlapping windows agreed; higher is surer).
        profile: True when the profile cascade found it.
    """

    x: float
    y: float
    w: float
    h: float
    score: float
    profile: bool = False


@dataclass(frozen=True, slots=True)
class DetectorOptions:
    """Cascade parameters.

    Attributes:
        min_size: smallest face side in pixels (the cascades are trained at 20-24 px).
        scale_factor: step between pyramid scales; 1.15 halves the cost of 1.05 and still finds
            faces of any size in between.
        min_neighbors: overlapping windows needed to accept a face (rejects most texture hits).
        profile: also run the profile cascade where the frontal one finds nothing.
    """

    min_size: int = 24
    scale_factor: float = 1.15
    min_neighbors: int = 4
    profile: bool = True


class FaceDetector:
    """Haar-cascade face detector. Not thread-safe: make one per thread (loading takes ~50 ms)."""

    def __init__(self, options: DetectorOptions | None = None, cascade_dir: Path | None = None):
        self.options = options or DetectorOptions()
        folder = cascade_dir or face_cascade_dir()
        frontal_name, profile_name = FACE_CASCADES
        self._frontal = _load(folder / frontal_name)
        self._profile = _load(folder / profile_name)

    @staticmethod
    def info() -> ModelInfo:
        """Registry identity of the cascades in use."""
        info = face_detector_info()
        if info is None:  # pragma: no cover - cv2 is imported above, so it is installed
            raise ConfigError("OpenCV is not installed")
        return info

    def detect(self, gray: GrayImage, *, profile: bool = True) -> list[FaceBox]:
        """Faces in one grey image, largest first; overlapping hits are merged.

        `profile=False` skips the profile cascade for this frame (it triples the cost of a frame
        without frontal faces, so callers run it on some frames only).
        """
        opts = self.options
        # Equalising makes the cascades (trained on normalised windows) robust to dim footage.
        image: GrayImage = np.asarray(cv2.equalizeHist(np.ascontiguousarray(gray)), np.uint8)
        found = self._run(self._frontal, image, profile=False, mirrored=False)
        if not found and opts.profile and profile:
            found = self._run(self._profile, image, profile=True, mirrored=False)
            mirror: GrayImage = np.ascontiguousarray(image[:, ::-1])
            found += self._run(self._profile, mirror, profile=True, mirrored=True)
        return suppress(found)

    def _run(
        self,
        cascade: cv2.CascadeClassifier,
        image: GrayImage,
        *,
        profile: bool,
        mirrored: bool,
    ) -> list[FaceBox]:
        opts = self.options
        boxes, neighbours = cascade.detectMultiScale2(
            np.ascontiguousarray(image),
            scaleFactor=opts.scale_factor,
            minNeighbors=opts.min_neighbors,
            minSize=(opts.min_size, opts.min_size),
        )
        width = image.shape[1]
        out: list[FaceBox] = []
        for (x, y, w, h), n in zip(boxes, neighbours, strict=True):
            left = width - x - w if mirrored else x
            out.append(FaceBox(float(left), float(y), float(w), float(h), float(n), profile))
        return out


def _load(path: Path) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise ConfigError(f"could not load the face cascade {path}")
    return cascade


def iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes."""
    ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ix * iy
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def suppress(boxes: list[FaceBox], overlap: float = 0.3) -> list[FaceBox]:
    """Greedy non-maximum suppression, larger and surer boxes first."""
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: b.score * b.w * b.h, reverse=True):
        if all(iou(box, k) < overlap for k in kept):
            kept.append(box)
    return sorted(kept, key=lambda b: b.w * b.h, reverse=True)
