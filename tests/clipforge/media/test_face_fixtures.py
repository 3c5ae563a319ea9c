"""The face fixtures of scripts/make_test_media.py: their truth files agree with the video and audio.

Reframing and speaker-turn tests trust `<name>.truth.json`; these tests check it against the
decoded pixels and samples, so a wrong hand measurement or an off-by-one in the compositing
shows up here rather than as a puzzling reframing failure.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from clipforge.media import decode_audio, probe, sample_frames

CROP_9_16_W = 302  # the widest 9:16 crop of a 540-line frame


def _frames(path: Path, fps: float, truth: dict[str, Any]) -> list[tuple[int, np.ndarray]]:
    """(frame index, full-size RGB frame) sampled at `fps`."""
    return [
        (round(f.t * truth["fps"]), f.image.astype(np.int16))
        for f in sample_frames(path, fps, truth["width"])
    ]


def test_face_pan_truth_matches_the_pixels(
    test_media: dict[str, Path], media_script: ModuleType
) -> None:
    path = test_media["face_pan"]
    truth = media_script.truth(path)
    boxes = truth["face_boxes"]
    assert len(boxes) == truth["frames"]
    assert abs(probe(path).duration_s - truth["duration_s"]) < 0.1
    half = truth["width"] // 2
    assert all(
        x >= 0 and x + w <= half and y >= 0 and y + h <= truth["height"] for x, y, w, h in boxes
    )
    xs = [b[0] for b in boxes]
    assert max(xs) - min(xs) > 150  # it pans across the left half
    assert truth["distractor"] == [half, 0, half, truth["height"]]
    # The decoded face region is the portrait's face; 30 px to the side it is not.
    portrait = media_script._face_media().portrait()
    fx, fy, fw, fh = portrait.face
    upper = fh * 3 // 5  # above the animated mouth
    reference = portrait.rgb[fy : fy + upper, fx : fx + fw].astype(np.int16)
    for i, image in _frames(path, 2.0, truth):
        x, y, w, h = boxes[i]
        assert (w, h) == (fw, fh)
        here = np.abs(image[y : y + upper, x : x + w] - reference).mean()
        beside = np.abs(image[y : y + upper, x + 30 : x + 30 + w] - reference).mean()
        assert here < 12, (i, here)
        assert beside > 2 * here + 10, (i, here, beside)


def test_two_speakers_truth_matches_audio_and_mouths(
    test_media: dict[str, Path], media_script: ModuleType
) -> None:
    path = test_media["two_speakers"]
    truth = media_script.truth(path)
    utterances = truth["utterances"]
    turns = media_script.dialogue_turns()
    assert [(u["speaker"], u["text"]) for u in utterances] == turns
    assert all(u["face"] == ("left", "right")[u["speaker"]] for u in utterances)
    assert all(
        a["end"] < b["start"] and a["speaker"] != b["speaker"]
        for a, b in itertools.pairwise(utterances)
    )
    assert 25 < truth["duration_s"] < 40
    assert abs(probe(path).duration_s - truth["duration_s"]) < 0.1
    left, right = truth["faces"]["left"]["boxes"], truth["faces"]["right"]["boxes"]
    assert len(left) == len(right) == truth["frames"]
    # No 9:16 crop holds both faces.
    assert min(b[0] + b[2] - a[0] for a, b in zip(left, right, strict=True)) > CROP_9_16_W

    # Speech inside every utterance, silence between them (the times are sample-exact).
    audio, rate = decode_audio(path), 16000
    gaps = [(a["end"] + 0.05, b["start"] - 0.05) for a, b in itertools.pairwise(utterances)]
    quiet = np.concatenate([audio[int(s * rate) : int(e * rate)] for s, e in gaps])
    loud = np.concatenate(
        [audio[int(u["start"] * rate) : int(u["end"] * rate)] for u in utterances]
    )
    assert np.sqrt(np.mean(loud**2)) > 30 * np.sqrt(np.mean(quiet**2) + 1e-12)

    # Each mouth is darker (open) while its own voice speaks than while the other one does.
    people = media_script._face_media().speakers()
    dark: dict[tuple[int, bool], list[float]] = {(k, s): [] for k in (0, 1) for s in (True, False)}
    for i, image in _frames(path, 5.0, truth):
        t = i / truth["fps"]
        speaking = next((u["speaker"] for u in utterances if u["start"] <= t <= u["end"]), None)
        if speaking is None:
            continue
        for k, boxes in enumerate((left, right)):
            (mx, my, mr), (fx, fy) = people[k].mouth, people[k].face[:2]
            x, y = boxes[i][0] - fx + mx, boxes[i][1] - fy + my  # the mouth in the frame
            patch = image[int(y) - 3 : int(y) + 6, int(x - mr / 2) : int(x + mr / 2)]
            dark[(k, speaking == k)].append(255 - float(patch.mean()))
    for k in (0, 1):
        assert np.mean(dark[(k, True)]) > np.mean(dark[(k, False)]) + 25, (k, dark)
