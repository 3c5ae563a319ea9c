"""Exports at the preset sizes, short-form captions clear of the tracked face, the poster frame.

Real ffmpeg renders probed with PyAV; the 640x360 and 1920x1080 sources are built here (3 s of
ffmpeg's test pattern with a tone), the face media by scripts/make_test_media.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from clipforge.media import run_ffmpeg
from clipforge.types import Word
from models.caption_formats import STYLES, place
from pipelines.config import ExportConfig, load_pipeline_config
from pipelines.render.clip import PRESETS, output_size
from pipelines.render.clip_files import render_clip_files
from pipelines.render.poster import choose_poster

SOURCES = {"640x360": (640, 360), "1920x1080": (1920, 1080)}


def _ffmpeg(*args: str) -> None:
    run_ffmpeg(args, timeout_s=120, step="test_media")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sources")
    out = {}
    for name, (w, h) in SOURCES.items():
        path = folder / f"{name}.mp4"
        _ffmpeg(
            "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=25:duration=3",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(path),
        )  # fmt: skip
        out[name] = path
    return out


@pytest.fixture(scope="module")
def export_config() -> ExportConfig:
    return load_pipeline_config().export  # the shipped defaults: full preset size


def _size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.width, stream.codec_context.height


def _timed(text: str, start: float, step: float) -> list[Word]:
    """The words of `text`, one every `step` seconds from `start`, each lasting most of it."""
    return [
        Word(start + step * i, start + step * i + 0.8 * step, w)
        for i, w in enumerate(text.split(" "))
    ]


WORDS = _timed("One two. Three four", 0.6, 0.3)


@pytest.mark.parametrize("aspect", sorted(PRESETS))
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_preset_has_its_exact_size_from_any_source(
    aspect: str, source: str, sources: dict[str, Path], export_config: ExportConfig, tmp_path: Path
) -> None:
    files = render_clip_files(
        sources[source],
        tmp_path,
        start_s=0.5,
        end_s=2.5,
        words=WORDS,
        aspect_ratio=aspect,
        caption_style="auto",
        config=export_config,
    )
    assert _size(files.mp4) == PRESETS[aspect]
    width, height = PRESETS[aspect]
    assert f"PlayResX: {width}\nPlayResY: {height}" in files.ass.read_text()  # output pixels
    assert np.asarray(cv2.imread(str(files.jpg))).shape[:2] == (height, width)  # the poster


def test_draft_size_is_a_config_option() -> None:
    assert output_size("9:16") == (1080, 1920)
    assert output_size("9:16", 720) == (720, 1280)
    assert output_size("4:5", 720) == (720, 900)
    assert output_size("16:9", 720) == (1280, 720)
    assert load_pipeline_config(export__short_side=720).export.short_side == 720


def _caption_block(ass: str, height: int) -> tuple[float, float]:
    """(top, bottom) of the caption block as shares of the height, from the script's style."""
    fields = re.search(r"^Style: (.*)$", ass, re.M).group(1).split(",")  # type: ignore[union-attr]
    size, outline, alignment, margin = (
        int(fields[2]),
        float(fields[16]),
        int(fields[18]),
        int(fields[21]),
    )
    lines = max(
        line.split(",,", 1)[1].count("\\N") + 1
        for line in ass.splitlines()
        if line.startswith("Dialogue:")
    )
    block = (lines * size * 1.2 + 2 * outline) / height
    top = margin / height if alignment == 8 else 1 - margin / height - block
    return top, top + block


def test_captions_keep_out_of_the_tracked_face(tmp_path: Path, test_media: dict[str, Path]) -> None:
    face_pan = test_media["face_pan"]
    truth = json.loads(face_pan.with_suffix(".truth.json").read_text())
    # A 9:16 crop of the 960x540 picture is full height: the face's rows are the output's.
    height = truth["height"]
    face = (
        min(b[1] for b in truth["face_boxes"]) / height,
        max(b[1] + b[3] for b in truth["face_boxes"]) / height,
    )
    words = _timed("Today we talk about building small tools that do one thing well.", 4.1, 0.35)
    files = render_clip_files(
        face_pan,
        tmp_path,
        start_s=4.0,
        end_s=9.5,
        words=words,
        aspect_ratio="9:16",
        caption_style="auto",
        config=load_pipeline_config(export__short_side=540).export,  # a draft: faster
    )
    ass = files.ass.read_text()
    top, bottom = _caption_block(ass, 960)
    assert bottom <= face[0] or top >= face[1], (top, bottom, face)
    # Where the style puts captions by itself, they would cover the chin: the face moved them.
    size = int(re.search(r"^Style: [^,]+,[^,]+,(\d+),", ass, re.M).group(1))  # type: ignore[union-attr]
    alignment, margin = place(STYLES["shorts"], 960, 2 * size * 1.2 + 12)
    default_top = 1 - (margin + 2 * size * 1.2 + 12) / 960
    assert alignment == 2 and default_top < face[1]


def _still(face_pan: Path, at_s: float) -> np.ndarray:
    with av.open(str(face_pan)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= at_s:
                return np.asarray(frame.to_ndarray(format="bgr24"))
    raise AssertionError("no frame")


def test_poster_is_a_sharp_open_eyed_face_not_the_frame_at_one_second(
    tmp_path: Path, test_media: dict[str, Path]
) -> None:
    face_pan = test_media["face_pan"]
    truth = json.loads(face_pan.with_suffix(".truth.json").read_text())
    picture = _still(face_pan, 1.0)
    x, y, w, h = truth["face_boxes"][25]  # frame 25 = 1 s
    # 0-2 s eyes shut (the eye band painted in the face's own skin tone), 2-4 s motion blur,
    # 4-6 s the face as it is. A frame at 1 s is the shut-eyed one.
    shut = picture.copy()
    skin = picture[y + int(0.7 * h) : y + int(0.8 * h), x + int(0.2 * w) : x + int(0.3 * w)]
    shut[y + int(0.2 * h) : y + int(0.55 * h), x : x + w] = skin.reshape(-1, 3).mean(axis=0)
    blurred = cv2.blur(picture, (25, 3))
    for name, image in (("a", shut), ("b", blurred), ("c", picture)):
        cv2.imwrite(str(tmp_path / f"{name}.png"), image)
    clip = tmp_path / "clip.mp4"
    _ffmpeg(
        *(arg for n in "abc" for arg in ("-loop", "1", "-t", "2", "-i", str(tmp_path / f"{n}.png"))),
        "-filter_complex", "concat=n=3:v=1:a=0,format=yuv420p",
        "-r", "25", "-c:v", "libx264", "-preset", "ultrafast",
        "-force_key_frames", "expr:gte(t,n_forced*1)", str(clip),
    )  # fmt: skip
    poster = choose_poster(clip)
    assert len(poster.candidates) == 6  # the keyframes, one a second: cheap
    assert poster.reason == "face"
    assert 4.0 <= poster.t < 6.0, poster
    by_time = {round(c.t): c for c in poster.candidates}
    assert by_time[1].eyes < 2 and by_time[5].eyes == 2  # the shut eyes are seen as such
    assert by_time[5].sharpness > by_time[3].sharpness  # and the blur


def test_poster_falls_back_to_the_sharpest_frame_near_the_peak(
    sources: dict[str, Path],
) -> None:
    poster = choose_poster(sources["640x360"])  # a test pattern: no face
    assert poster.reason == "peak"
    assert not any(c.face for c in poster.candidates)
