"""Subject-aware reframing on the face fixtures, checked on the rendered pixels.

The crop a rendered clip actually shows is recovered from its pixels, independently of the face
detector: each sampled output frame is scaled back to the crop size and located in the source
frame of the same index by normalised cross-correlation (the fixtures are made so that the match
is unambiguous). The truth face boxes that scripts/make_test_media.py wrote are then checked
against that located window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from clipforge.media import probe, run_ffmpeg
from clipforge.types import Word
from pipelines.render.clip import (
    RenderSpec,
    crop_size,
    crop_x_expression,
    motion_centres,
    output_size,
    plan_clip,
    render_clip,
)
from pipelines.render.reframe import ReframePlan, plan_reframe
from pipelines.render.reframe_analysis import ClipAnalysis, analyse

FPS = 25  # both face fixtures
EVERY = 12  # sample one output frame in 12 (about two a second)
SHORT_SIDE = 240  # small renders: the geometry is the same at any size


def _truth(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_suffix(".truth.json").read_text(encoding="utf-8"))
    return data


def _spec(start: float, end: float, **kw: Any) -> RenderSpec:
    return RenderSpec(start, end, "9:16", short_side=SHORT_SIDE, preset="ultrafast", crf=30, **kw)


def _grey_frames(
    path: Path, every: int, *, start: float | None = None, dur: float = 0.0
) -> np.ndarray:
    """Every `every`-th frame (by index, from the first) as grey arrays; `start`/`dur` seek like
    the renderer does, so frame n of a clip and frame n here are the same source frame."""
    info = probe(path)
    seek = ["-ss", f"{start:.3f}"] if start is not None else []
    limit = ["-t", f"{dur:.3f}"] if dur else []
    args = [*seek, "-i", str(path), *limit]
    args += ["-vf", f"select=not(mod(n\\,{every})),format=gray", "-fps_mode", "passthrough"]
    raw = run_ffmpeg([*args, "-f", "rawvideo", "-"], timeout_s=120, step="test_frames")
    return np.frombuffer(raw, np.uint8).reshape(-1, info.height, info.width)


def _locate(view: np.ndarray, source: np.ndarray, size: tuple[int, int]) -> tuple[int, int, float]:
    """Top-left of the window of `size` in `source` that `view` shows, and the match score:
    found at half resolution, then refined to the pixel nearby."""
    template = cv2.resize(view, size, interpolation=cv2.INTER_AREA)
    half = cv2.resize(source, (source.shape[1] // 2, source.shape[0] // 2), cv2.INTER_AREA)
    small = cv2.resize(template, (size[0] // 2, size[1] // 2), interpolation=cv2.INTER_AREA)
    _, _, _, (hx, hy) = cv2.minMaxLoc(cv2.matchTemplate(half, small, cv2.TM_CCOEFF_NORMED))
    x0, y0 = max(0, 2 * hx - 4), max(0, 2 * hy - 4)
    region = source[y0 : y0 + size[1] + 8, x0 : x0 + size[0] + 8]
    scores = cv2.matchTemplate(region, template, cv2.TM_CCOEFF_NORMED)
    _, best, _, (x, y) = cv2.minMaxLoc(scores)
    return x0 + x, y0 + y, best


def _inside(box: list[int], x: int, y: int, size: tuple[int, int], slack: int = 2) -> bool:
    bx, by, bw, bh = box
    w, h = size
    return (
        bx >= x - slack
        and by >= y - slack
        and bx + bw <= x + w + slack
        and by + bh <= y + h + slack
    )


def _render_and_locate(
    src: Path, tmp: Path, spec: RenderSpec, plan: ReframePlan | None, size: tuple[int, int]
) -> tuple[list[tuple[int, int, int, float]], Path]:
    """Render, then (source frame index, x, y, score) of the window each sampled frame shows."""
    info = probe(src)
    dest = tmp / f"clip-{spec.start_s:.0f}-{spec.layout}-{spec.face_tracking}.mp4"
    render_clip(src, dest, spec, src_size=(info.width, info.height), plan=plan)
    out = _grey_frames(dest, EVERY)
    source = _grey_frames(src, EVERY, start=spec.start_s, dur=spec.end_s - spec.start_s)
    first = round(spec.start_s * FPS)
    located = []
    for n, (view, frame) in enumerate(zip(out, source, strict=False)):
        x, y, score = _locate(view, frame, size)
        located.append((first + n * EVERY, x, y, score))
    return located, dest


@pytest.fixture(scope="module")
def face_pan(test_media: dict[str, Path]) -> Path:
    return test_media["face_pan"]


@dataclass(frozen=True)
class RenderedClip:
    """A face_pan clip rendered once for several tests, with the window located on every frame."""

    spec: RenderSpec
    plan: ReframePlan
    xs: np.ndarray  # located left edge per output frame


@pytest.fixture(scope="module")
def face_pan_clip(face_pan: Path, tmp_path_factory: pytest.TempPathFactory) -> RenderedClip:
    truth = _truth(face_pan)
    size = (truth["width"], truth["height"])
    spec = _spec(0.0, 9.0)
    plan = plan_clip(face_pan, spec, src_size=size)
    dest = tmp_path_factory.mktemp("face_pan") / "clip.mp4"
    render_clip(face_pan, dest, spec, src_size=size, plan=plan)
    out, source = _grey_frames(dest, 1), _grey_frames(face_pan, 1, start=0.0, dur=9.0)
    crop = crop_size(*size, "9:16")
    xs = [_locate(v, f, crop)[0] for v, f in zip(out, source, strict=False)]
    return RenderedClip(spec, plan, np.asarray(xs, dtype=np.float64))


@pytest.fixture(scope="module")
def two_speakers(test_media: dict[str, Path]) -> Path:
    return test_media["two_speakers"]


@pytest.fixture(scope="module")
def two_speakers_analysis(two_speakers: Path) -> ClipAnalysis:
    truth = _truth(two_speakers)
    return analyse(two_speakers, 0.0, truth["duration_s"], (truth["width"], truth["height"]))


def test_face_pan_keeps_the_face_in_every_9x16_clip(
    face_pan: Path, face_pan_clip: RenderedClip, tmp_path: Path
) -> None:
    truth = _truth(face_pan)
    size = (truth["width"], truth["height"])
    crop = crop_size(*size, "9:16")
    boxes = truth["face_boxes"]
    duration = truth["duration_s"]
    windows = [(0.0, 9.0), (8.0, 17.0), (16.0, duration)]
    for start, end in windows:
        if start == 0.0:  # rendered once by the fixture, located on every frame
            plan = face_pan_clip.plan
            located = [
                (n, int(x), 0, 1.0) for n, x in enumerate(face_pan_clip.xs) if n % EVERY == 0
            ]
        else:
            spec = _spec(start, end)
            plan = plan_clip(face_pan, spec, src_size=size)
            located, _ = _render_and_locate(face_pan, tmp_path, spec, plan, crop)
        assert plan.layout == "speaker" and plan.source == "faces" and plan.tracks == 1
        assert len(located) >= (end - start) * FPS // EVERY - 1
        assert min(score for *_, score in located) > 0.9  # the window was found unambiguously
        inside = [_inside(boxes[i], x, y, crop) for i, x, y, _ in located]
        share = sum(inside) / len(inside)
        # The window the pixels show is the one planned (the emitted expression does what the
        # plan says), to the 2 px that ffmpeg's even-pixel crop rounding allows.
        planned = [plan.windows[0].at((i - round(start * FPS)) / FPS)[0] for i, *_ in located]
        drift = max(abs(x - p) for (_, x, _, _), p in zip(located, planned, strict=True))
        print(
            f"face_pan {start:4.1f}-{end:4.1f}s: face inside {share:.0%}, plan vs pixels {drift:.1f}px"
        )
        assert share >= 0.9
        assert drift <= 4


def test_motion_only_path_loses_the_face_that_tracking_keeps(
    face_pan: Path, tmp_path: Path
) -> None:
    """The fixture is a real test: the earlier motion-following crop (face_tracking=False, the
    exact old code path) drifts to the distractor."""
    truth = _truth(face_pan)
    size = (truth["width"], truth["height"])
    crop = crop_size(*size, "9:16")
    spec = _spec(3.0, 8.0, face_tracking=False)
    located, _ = _render_and_locate(face_pan, tmp_path, spec, None, crop)
    inside = [_inside(truth["face_boxes"][i], x, y, crop) for i, x, y, _ in located]
    print(f"motion-only path: face inside {sum(inside) / len(inside):.0%}")
    assert sum(inside) / len(inside) < 0.5
    # ...and the motion path it rendered is the one `crop_x_expression` describes.
    expr = crop_x_expression(motion_centres(face_pan, 3.0, 5.0), size[0], crop[0])
    assert expr != str((size[0] - crop[0]) // 2)


def test_crop_path_speed_and_jumps_are_bounded(face_pan: Path, face_pan_clip: RenderedClip) -> None:
    """Every frame of a clip: the window's speed and largest frame-to-frame jump, measured on the
    output pixels (no scene cut in this fixture, so no jump is allowed anywhere)."""
    truth = _truth(face_pan)
    crop = crop_size(truth["width"], truth["height"], "9:16")
    plan, xs = face_pan_clip.plan, face_pan_clip.xs
    assert plan.cuts == () and len(xs) == 9 * FPS
    steps = np.abs(np.diff(xs))
    mean_speed, largest = float(steps.mean() * FPS), float(steps.max())
    planned = np.asarray([plan.windows[0].at(n / FPS)[0] for n in range(len(xs))])
    p_speed = float(np.abs(np.diff(planned)).mean() * FPS)
    print(
        f"crop path over {len(xs)} frames: mean |speed| {mean_speed:.1f} px/s "
        f"({mean_speed / crop[0]:.2f} crop widths/s; planned {p_speed:.1f}), "
        f"largest jump {largest:.0f} px/frame ({largest / crop[0]:.1%} of the crop width)"
    )
    # The face moves at most ~61 px/s (0.2 crop widths/s): the window keeps up without jitter.
    assert mean_speed <= 0.3 * crop[0]
    assert largest <= 0.04 * crop[0]  # ~12 px: a glide, never a jump


def test_two_speakers_speaker_layout_frames_who_speaks(
    two_speakers: Path, two_speakers_analysis: ClipAnalysis, tmp_path: Path
) -> None:
    truth = _truth(two_speakers)
    size = (truth["width"], truth["height"])
    crop = crop_size(*size, "9:16")
    faces = {face["speaker"]: face["boxes"] for face in truth["faces"].values()}
    spec = _spec(0.0, truth["duration_s"], layout="speaker")
    plan = _plan(two_speakers, spec, size, two_speakers_analysis)
    assert plan.layout == "speaker" and plan.tracks == 2
    located, _ = _render_and_locate(two_speakers, tmp_path, spec, plan, crop)
    hits = total = 0
    for i, x, y, _ in located:
        speaking = _speaker_at(truth, i / FPS)
        if speaking is not None:
            total += 1
            hits += _inside(faces[speaking][i], x, y, crop)
    print(f"two_speakers, lips and voice only: on the speaker in {hits}/{total} sampled frames")
    assert total >= 40 and hits / total >= 0.8
    # A switch between the two faces (480 px apart) is a clean cut, never a pan across; between
    # cuts the window holds still (the heads sway by a few pixels: the dead band absorbs it).
    _assert_still_between_cuts(plan, truth["duration_s"], crop[0])


def test_speaker_turns_from_words_pick_the_right_faces(
    two_speakers: Path, two_speakers_analysis: ClipAnalysis
) -> None:
    """Diarized words (labels deliberately not 0/1 and in the other order) are matched to the
    faces whose lips move with them, and then say who is framed."""
    truth = _truth(two_speakers)
    size = (truth["width"], truth["height"])
    crop = crop_size(*size, "9:16")
    label = {0: 7, 1: 3}
    words = []
    for u in truth["utterances"]:
        tokens = u["text"].split()
        step = (u["end"] - u["start"]) / len(tokens)
        for n in range(len(tokens)):
            t0 = u["start"] + n * step
            words.append(Word(t0, t0 + step * 0.9, tokens[n], speaker=label[u["speaker"]]))
    spec = _spec(0.0, truth["duration_s"], layout="speaker")
    plan = _plan(two_speakers, spec, size, two_speakers_analysis, words=words)
    faces = {face["speaker"]: face["boxes"] for face in truth["faces"].values()}
    hits = total = 0
    for i in range(0, truth["frames"], 5):
        speaking = _speaker_at(truth, i / FPS)
        if speaking is not None:
            x, y = plan.windows[0].at(i / FPS)
            total += 1
            hits += _inside(faces[speaking][i], round(x), round(y), crop)
    print(f"two_speakers with speaker turns: on the speaker in {hits}/{total} frames")
    assert hits / total >= 0.9


@pytest.fixture(scope="module")
def dialogue_part(two_speakers: Path) -> ClipAnalysis:
    """Analysis of 4-14 s of the dialogue (two changes of speaker)."""
    truth = _truth(two_speakers)
    return analyse(two_speakers, 4.0, 10.0, (truth["width"], truth["height"]))


def test_split_shows_both_faces(
    two_speakers: Path, dialogue_part: ClipAnalysis, tmp_path: Path
) -> None:
    truth = _truth(two_speakers)
    size = (truth["width"], truth["height"])
    spec = _spec(4.0, 14.0, layout="split")
    plan = _plan(two_speakers, spec, size, dialogue_part)
    assert plan.layout == "split" and len(plan.windows) == 2
    half = (plan.windows[0].w, plan.windows[0].h)
    dest = tmp_path / "split.mp4"
    render_clip(two_speakers, dest, spec, src_size=size, plan=plan)
    out_w, out_h = output_size("9:16", SHORT_SIDE)
    assert (probe(dest).width, probe(dest).height) == (out_w, out_h)
    out = _grey_frames(dest, EVERY)
    source = _grey_frames(two_speakers, EVERY, start=4.0, dur=10.0)
    left, right = truth["faces"]["left"]["boxes"], truth["faces"]["right"]["boxes"]
    both = 0
    for n, (view, frame) in enumerate(zip(out, source, strict=False)):
        i = round(4.0 * FPS) + n * EVERY
        top_x, top_y, s1 = _locate(view[: out_h // 2], frame, half)
        bottom_x, bottom_y, s2 = _locate(view[out_h // 2 :], frame, half)
        assert min(s1, s2) > 0.9
        both += _inside(left[i], top_x, top_y, half) and _inside(right[i], bottom_x, bottom_y, half)
    print(f"split: both faces shown in {both}/{len(out)} sampled frames")
    assert both == len(out)


def test_auto_splits_the_quick_dialogue(
    two_speakers: Path, two_speakers_analysis: ClipAnalysis, dialogue_part: ClipAnalysis
) -> None:
    """The whole dialogue alternates every 2-5 s: `auto` stacks the two faces; a 10 s stretch
    with two changes of speaker stays one window on the speaker."""
    truth = _truth(two_speakers)
    size = (truth["width"], truth["height"])
    whole = _plan(two_speakers, _spec(0.0, truth["duration_s"]), size, two_speakers_analysis)
    assert whole.layout == "split"
    part = _plan(two_speakers, _spec(4.0, 14.0), size, dialogue_part)
    assert part.layout == "speaker" and len(part.cuts) == 2


def test_no_face_falls_back_to_motion_inside_the_picture(
    test_media: dict[str, Path], tmp_path: Path
) -> None:
    src = test_media["speech_short"]  # a colour test pattern with hue cuts, no face
    info = probe(src)
    size = (info.width, info.height)
    crop = crop_size(*size, "9:16")
    spec = _spec(1.0, 9.0)
    analysis = analyse(src, 1.0, 8.0, size)
    # One pass over exactly the clip: 6 analysis frames a second, a motion sample every 12 of 25
    # frames (a pass that ran on to the end of the source would show here).
    assert analysis.times.size == 48 and len(analysis.motion) == (8 * 25 - 1) // 12
    assert analysis.cuts == [pytest.approx(6.0, abs=0.05)]  # the fixture's hue cut at 7 s
    plan = _plan(src, spec, size, analysis)
    assert plan.tracks == 0 and plan.source in ("motion", "center")
    window = plan.windows[0]
    assert (window.w, window.h) == crop
    for n in range(0, 8 * FPS):
        x, y = window.at(n / FPS)
        assert 0 <= x <= size[0] - crop[0] and 0 <= y <= size[1] - crop[1]
    dest = render_clip(src, tmp_path / "pattern.mp4", spec, src_size=size, plan=plan)
    assert probe(dest).duration_s == pytest.approx(8.0, abs=0.15)
    centre = plan_clip(src, _spec(1.0, 9.0, layout="center"), src_size=size)
    assert centre.windows[0].at(3.0) == ((size[0] - crop[0]) // 2, (size[1] - crop[1]) // 2)


def _plan(
    src: Path,
    spec: RenderSpec,
    size: tuple[int, int],
    analysis: ClipAnalysis,
    words: list[Word] | None = None,
) -> ReframePlan:
    return plan_reframe(
        src,
        start_s=spec.start_s,
        duration_s=spec.end_s - spec.start_s,
        src_size=size,
        crop=crop_size(*size, spec.aspect_ratio),
        out_size=output_size(spec.aspect_ratio, spec.short_side),
        layout=spec.layout,
        words=words,
        analysis=analysis,
    )


def _speaker_at(truth: dict[str, Any], t: float) -> int | None:
    for u in truth["utterances"]:
        if u["start"] <= t <= u["end"]:
            return int(u["speaker"])
    return None


def _assert_still_between_cuts(plan: ReframePlan, duration: float, crop_w: int) -> None:
    xs = np.asarray([plan.windows[0].at(n / FPS)[0] for n in range(int(duration * FPS))])
    cut_frames = {int(np.ceil(c * FPS - 1e-6)) for c in plan.cuts}
    steps = [abs(xs[n] - xs[n - 1]) for n in range(1, len(xs)) if n not in cut_frames]
    cut_steps = [abs(xs[n] - xs[n - 1]) for n in cut_frames if 0 < n < len(xs)]
    print(
        f"two_speakers: {len(plan.cuts)} cuts of {min(cut_steps):.0f}-{max(cut_steps):.0f} px, "
        f"largest step elsewhere {max(steps):.1f} px, mean |speed| "
        f"{float(np.mean(steps)) * FPS:.1f} px/s"
    )
    assert max(steps) <= 0.01 * crop_w
    assert min(cut_steps) > 0.25 * crop_w  # each cut is a real switch, not a twitch
