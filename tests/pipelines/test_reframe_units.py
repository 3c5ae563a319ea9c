"""Reframing pieces on synthetic input: path smoothing, expressions, tracking, speaker choice."""

from __future__ import annotations

import numpy as np
import pytest

from clipforge.media import run_ffmpeg
from clipforge.types import Word
from pipelines.render.reframe import check_layout
from pipelines.render.reframe_analysis import ClipAnalysis, MouthSample, scene_cuts
from pipelines.render.reframe_path import (
    PathLimits,
    expression,
    join_pieces,
    motion_stats,
    smooth_path,
    to_keys,
    value_at,
)
from pipelines.render.reframe_speaker import choose_speakers, turns_from_words
from pipelines.render.reframe_tracks import FaceDetection, link

DT = 1 / 6


def test_noisy_still_subject_gives_a_still_window() -> None:
    rng = np.random.default_rng(3)
    times = np.arange(0, 20, DT)
    targets = 300 + rng.normal(0, 4, times.size)  # detector wobble of a few pixels
    path = smooth_path(times, targets, span=660, crop=300)
    assert float(np.ptp(path)) < 1.0  # the dead band absorbs it: no drift, no jitter
    assert abs(float(path.mean()) - 300) < 15


def test_moving_subject_is_followed_within_speed_and_acceleration_bounds() -> None:
    times = np.arange(0, 20, DT)
    targets = 200 + 150 * np.sin(2 * np.pi * times / 8)
    limits = PathLimits()
    path = smooth_path(times, targets, span=660, crop=300, limits=limits)
    speed, accel = motion_stats(path, DT)
    assert speed <= limits.max_speed * 300 and accel <= limits.max_accel * 300
    assert float(np.abs(path - targets).max()) < limits.dead_band * 300 + 25  # keeps up


def test_a_step_is_a_clean_cut_only_where_a_cut_is_allowed() -> None:
    times = np.arange(0, 10, DT)
    targets = np.where(times < 5, 100.0, 500.0)
    free = smooth_path(times, targets, span=660, crop=300)
    assert float(np.abs(np.diff(free)).max()) <= PathLimits().max_speed * 300 * DT + 1e-6
    cut = smooth_path(times, targets, span=660, crop=300, cuts=[5.0])
    steps = np.abs(np.diff(cut))
    jump = int(np.searchsorted(times, 5.0 - 1e-9)) - 1
    assert steps[jump] == pytest.approx(400, abs=1)
    assert float(np.delete(steps, jump).max()) < 1e-6


def test_the_window_never_leaves_the_picture() -> None:
    times = np.arange(0, 6, DT)
    targets = np.linspace(-500, 1500, times.size)
    path = smooth_path(times, targets, span=660, crop=300)
    assert path.min() >= 0 and path.max() <= 660
    assert np.all(smooth_path(times, np.full(times.size, np.nan), span=660, crop=300) == 330)


def test_keys_expression_and_cut_agree_with_ffmpeg() -> None:
    times = np.arange(0, 4, 0.1)
    values = 100 + 80 * np.sin(times)
    keys = to_keys(times, values, tolerance=0.5)
    assert len(keys) < len(times) / 2
    assert max(abs(value_at(keys, t) - v) for t, v in zip(times, values, strict=True)) <= 0.6
    later = to_keys(times + 4, np.full(times.size, 600.0))
    joined = join_pieces([keys, later], [4.0])
    assert value_at(joined, 3.99) == pytest.approx(values[-1], abs=1)
    assert value_at(joined, 4.0) == 600.0
    # ffmpeg's crop applies the expression: column x of a ramp picture has the value x/4.
    graph = (
        f"nullsrc=s=1024x2:r=10:d=8,format=gray,geq=lum='X/4',crop=100:2:'{expression(joined)}':0"
    )
    args = ["-f", "lavfi", "-i", graph, "-f", "rawvideo", "-"]
    raw = run_ffmpeg(args, timeout_s=60, step="test_crop")
    frames = np.frombuffer(raw, np.uint8).reshape(-1, 2, 100)
    applied = frames[:, 0, 0].astype(float) * 4
    wanted = np.asarray([value_at(joined, n / 10) for n in range(len(frames))])
    assert float(np.abs(applied - wanted).max()) <= 4  # x/4 quantisation


def _det(
    frame: int, x: float, w: float = 60.0, scene: int = 0, *, detected: bool = True
) -> FaceDetection:
    return FaceDetection(
        frame=frame, t=frame * DT, box=(x, 200.0, w, w), scene=scene, detected=detected
    )


def test_link_keeps_faces_drops_flickers_and_joins_fragments() -> None:
    dets = []
    for k in range(60):
        dets.append(_det(k, 200 + k, detected=k % 6 == 0))  # a face walking right
        if not 20 <= k < 32:  # the second face is lost for 2 s
            dets.append(_det(k, 700.0, detected=k % 6 == 0))
    dets.append(_det(13, 450.0, w=30))  # a one-off false hit
    # Where the walking face just was, but after a scene cut: another face, another track.
    dets += [_det(60, 262.0, scene=1), _det(66, 262.0, scene=1)]
    tracks = link(dets, scan_period_s=1.0)
    assert sorted((tr.scene, len(tr.detections)) for tr in tracks) == [(0, 48), (0, 60), (1, 2)]
    walker = next(tr for tr in tracks if len(tr.detections) == 60)
    assert walker.box_at(3.0, hold_s=0.5) == pytest.approx((218.0, 200.0, 60.0, 60.0))
    assert walker.box_at(10.5, hold_s=0.5) is None


def _two_face_analysis(
    frames: int, speaker: list[int], *, energy: float = 1.0
) -> tuple[ClipAnalysis, list[FaceDetection]]:
    """Two faces; the mouth of `speaker[k]` moves on frame k (and the other one's is still)."""
    rng = np.random.default_rng(5)
    analysis = ClipAnalysis(times=np.arange(frames) * DT)
    analysis.energy = np.full(frames, energy)
    analysis.scenes = [0] * frames
    for k in range(frames):
        for face, x in enumerate((200.0, 700.0)):
            analysis.detections.append(_det(k, x, detected=k % 6 == 0))
            moving = speaker[k] == face
            value = float(rng.uniform(4, 9) if moving else rng.uniform(0, 0.8))
            analysis.mouths.append(MouthSample(k, len(analysis.detections) - 1, value))
    return analysis, analysis.detections


def test_lips_and_voice_pick_the_speaker_and_hold_short_interruptions() -> None:
    turns = [0] * 30 + [1] * 30 + [0] * 3 + [1] * 27  # a 0.5 s blip inside speaker 1's turn
    analysis, dets = _two_face_analysis(len(turns), turns)
    tracks = link(dets, scan_period_s=1.0)
    left = min(tracks, key=lambda tr: tr.mean_box()[0]).id
    right = 1 - left
    choice = choose_speakers(analysis, tracks)
    want = [left] * 30 + [right] * 60
    agree = sum(a == b for a, b in zip(choice.subjects, want, strict=True)) / len(want)
    assert agree >= 0.9
    assert len(choice.switches()) == 1  # the blip does not flick the camera


def test_speaker_labels_map_to_faces_by_lip_motion() -> None:
    turns = [0] * 24 + [1] * 24 + [0] * 24
    analysis, dets = _two_face_analysis(len(turns), turns, energy=0.0)  # no usable audio
    tracks = link(dets, scan_period_s=1.0)
    left = min(tracks, key=lambda tr: tr.mean_box()[0]).id
    words = [
        Word(100 + k * DT, 100 + (k + 1) * DT, "word", speaker=9 if s == 0 else 4)
        for k, s in enumerate(turns)
    ]
    got = turns_from_words(words, 100.0, len(turns) * DT)
    assert [label for *_, label in got] == [9, 4, 9]
    choice = choose_speakers(analysis, tracks, got)
    assert choice.label_tracks == {9: left, 4: 1 - left}


def test_scene_cuts_ignore_half_frame_motion_and_find_hard_cuts() -> None:
    rng = np.random.default_rng(1)
    frames = np.zeros((50, 36, 64), np.uint8)
    frames[:, :, :32] = 90
    frames[:, :, 32:] = rng.integers(0, 255, (50, 36, 32))  # a busy half, new noise every frame
    frames[30:, :, :32] = 200  # a cut: everything changes at frame 30...
    frames[30:, :, 32:] = rng.integers(200, 255, (20, 36, 32))
    assert scene_cuts(frames, 25.0) == [pytest.approx(30 / 25)]


def test_unknown_layout_is_refused() -> None:
    assert check_layout("split") == "split"
    with pytest.raises(ValueError, match="auto, speaker, split, center"):
        check_layout("zoom")
