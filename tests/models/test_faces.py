"""The bundled Haar cascades find the real face in NASA's astronaut portrait, offline."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.faces import FaceBox, FaceDetector, iou

# Hand-measured face box (x, y, w, h) in skimage.data.astronaut() (also used by the fixtures).
PHOTO_FACE = (172, 68, 106, 114)


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    from skimage import data

    grey: np.ndarray = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    return grey


def test_frontal_face_is_found_where_it_is(portrait: np.ndarray) -> None:
    faces = FaceDetector().detect(portrait)
    assert len(faces) == 1
    x, y, w, h = PHOTO_FACE
    truth = FaceBox(x, y, w, h, score=0.0)
    assert iou(faces[0], truth) > 0.5


def test_small_frames_and_no_face_in_blank_or_noise(portrait: np.ndarray) -> None:
    detector = FaceDetector()
    small = cv2.resize(portrait, (192, 192), interpolation=cv2.INTER_AREA)  # face ~40 px
    assert len(detector.detect(small)) == 1
    # No face in a blank picture or in noise (the cascades need a face-like pattern).
    rng = np.random.default_rng(0)
    assert detector.detect(np.full((180, 320), 128, np.uint8)) == []
    assert detector.detect(rng.integers(0, 255, (180, 320), dtype=np.uint8)) == []
    assert FaceDetector.info().name == "opencv-haar-face"
