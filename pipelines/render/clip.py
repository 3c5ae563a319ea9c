"""Clip rendering with ffmpeg: frame-accurate cut, reframe, burned captions, loudness, thumbnail.

Reframing crops the largest window of the target aspect ratio. Where the crop is narrower than
the picture, the window follows the motion in the shot: the horizontal centre of frame-to-frame
change is measured on small grey frames at 2 fps, smoothed, and turned into a piecewise-linear
`crop` x expression, so the window glides instead of jumping. Without motion it stays centred.
That is the path with `face_tracking=False`; with face tracking (the default) the window follows
faces and the active speaker, in the layout asked for (pipelines/render/reframe.py), and falls back to
motion, then the centre, where no face is seen.

Output size: every export renders at its aspect's preset (`PRESETS`: what Shorts, Reels, TikTok
and YouTube expect) whatever the source size, so a 640x360 source gives 1080x1920 9:16 clips; a
smaller crop is scaled up with lanczos. `short_side` below the preset's (a config option for
drafts) shrinks the output keeping the aspect. The crop is cut in source pixels first and scaled
once after, so only the window is scaled; captions are laid out in the output's pixels.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipforge.errors import MediaError
from clipforge.media.ffmpeg import ffmpeg_pipe, run_ffmpeg
from pipelines.render.poster import KEYFRAME_S, choose_poster
from pipelines.render.reframe import (
    SCALE_FLAGS,
    ReframePlan,
    check_layout,
    plan_reframe,
    video_filter,
)

_ASPECTS = {"9:16": (9, 16), "4:5": (4, 5), "1:1": (1, 1), "16:9": (16, 9)}
#: Output size of each aspect: the upload size the short-form platforms and YouTube expect.
PRESETS: dict[str, tuple[int, int]] = {
    "9:16": (1080, 1920),
    "4:5": (1080, 1350),
    "1:1": (1080, 1080),
    "16:9": (1920, 1080),
}
#: The presets' shorter side: `short_side` at this value (the default) renders the full preset.
PRESET_SHORT_SIDE = 1080
_TRACK_FPS = 2.0
_TRACK_WIDTH = 96
_TRACK_HEIGHT = 64  # aspect distortion does not matter for a horizontal motion centre
_MOTION_TIMEOUT_S = 600.0
_RENDER_TIMEOUT_S = 1800.0


@dataclass(frozen=True, slots=True)
class RenderSpec:
    """What to render.

    Attributes:
        start_s / end_s: clip bounds in the source.
        aspect_ratio: `9:16`, `4:5`, `1:1` or `16:9`.
        short_side: pixels of the output's shorter side (even); the preset's 1080 by default,
            less for drafts.
        ass_path: ASS captions to burn in (times relative to the clip start), or None.
        crf / preset / x264_params: x264 quality, speed and extra options ("" for none).
        loudness_lufs: integrated loudness target (EBU R128).
        layout: `auto`, `speaker`, `split` or `center` (pipelines/render/reframe.py says what each does).
        face_tracking: False renders the motion-following crop of earlier versions (exactly), for
            comparison and as an escape hatch; `center` is a fixed centre crop either way.
        fade_out_s: audio fade at the end (pipelines/render/clip_end.py: where the clip does not end on
            a pause); 0 for none.
    """

    start_s: float
    end_s: float
    aspect_ratio: str
    short_side: int = PRESET_SHORT_SIDE
    ass_path: Path | None = None
    crf: int = 23
    preset: str = "ultrafast"  # with x264_params, the shipped export config's
    x264_params: str = "cabac=1:deblock=0,0"
    loudness_lufs: float = -16.0
    layout: str = "auto"
    face_tracking: bool = True
    fade_out_s: float = 0.0

    def __post_init__(self) -> None:
        check_layout(self.layout)


def output_size(aspect_ratio: str, short_side: int = PRESET_SHORT_SIDE) -> tuple[int, int]:
    """Output width and height: the preset's size scaled to `short_side` (even numbers, as
    H.264 requires). Independent of the source: small sources are scaled up."""
    preset_w, preset_h = PRESETS[aspect_ratio]
    scale = short_side / min(preset_w, preset_h)
    return max(2, round(preset_w * scale / 2) * 2), max(2, round(preset_h * scale / 2) * 2)


def crop_size(src_w: int, src_h: int, aspect_ratio: str) -> tuple[int, int]:
    """The largest crop of the source with the target aspect ratio."""
    aw, ah = _ASPECTS[aspect_ratio]
    if src_w * ah > src_h * aw:  # source is wider than the target: crop the sides
        return int(src_h * aw / ah) // 2 * 2, src_h
    return src_w, int(src_w * ah / aw) // 2 * 2


def motion_centres(src: Path, start_s: float, duration_s: float) -> list[tuple[float, float]]:
    """(time from clip start, horizontal motion centre in 0..1) samples, smoothed."""
    output = [
        "-vf",
        f"fps={_TRACK_FPS},scale={_TRACK_WIDTH}:{_TRACK_HEIGHT},format=gray",
        "-f",
        "rawvideo",
    ]
    try:
        pixels = ffmpeg_pipe(
            src, start_s, duration_s, output, timeout_s=_MOTION_TIMEOUT_S, step="motion"
        )
    except MediaError:
        return []
    raw = np.frombuffer(pixels, dtype=np.uint8)
    if raw.size == 0:
        return []
    height, size = _TRACK_HEIGHT, _TRACK_WIDTH * _TRACK_HEIGHT
    frames = raw[: raw.size // size * size].reshape(-1, height, _TRACK_WIDTH).astype(np.float32)
    centres: list[tuple[float, float]] = []
    current = 0.5
    for i in range(1, len(frames)):
        energy = np.abs(frames[i] - frames[i - 1]).sum(axis=0)
        if energy.sum() > 2.0 * height * _TRACK_WIDTH:  # enough change to be real motion
            target = float((energy * np.arange(_TRACK_WIDTH)).sum() / energy.sum()) / (
                _TRACK_WIDTH - 1
            )
            current = 0.8 * current + 0.2 * target  # exponential smoothing: no jumps
        centres.append((i / _TRACK_FPS, current))
    return centres


def crop_x_expression(centres: Sequence[tuple[float, float]], src_w: int, crop_w: int) -> str:
    """A piecewise-linear ffmpeg expression of `t` for the crop window's left edge."""
    span = src_w - crop_w
    if span <= 0:
        return "0"
    if not centres:
        return str(span // 2)
    xs = [(t, min(span, max(0, int(c * src_w - crop_w / 2)))) for t, c in centres]
    expr = str(xs[-1][1])
    for (t0, x0), (t1, x1) in reversed(list(itertools.pairwise(xs))):
        expr = f"if(lt(t,{t1:.2f}),{x0}+({x1 - x0})*(t-{t0:.2f})/{t1 - t0:.2f},{expr})"
    return f"if(lt(t,{xs[0][0]:.2f}),{xs[0][1]},{expr})"


def plan_clip(
    src: Path,
    spec: RenderSpec,
    *,
    src_size: tuple[int, int],
    words: Sequence[object] | None = None,
) -> ReframePlan:
    """The face-tracking reframe plan `render_clip` uses for `spec` (see pipelines/render/reframe.py)."""
    src_w, src_h = src_size
    return plan_reframe(
        src,
        start_s=spec.start_s,
        duration_s=spec.end_s - spec.start_s,
        src_size=src_size,
        crop=crop_size(src_w, src_h, spec.aspect_ratio),
        out_size=output_size(spec.aspect_ratio, spec.short_side),
        layout=spec.layout,
        words=words,
    )


def render_clip(
    src: Path,
    dest: Path,
    spec: RenderSpec,
    *,
    src_size: tuple[int, int],
    words: Sequence[object] | None = None,
    plan: ReframePlan | None = None,
) -> Path:
    """Render one clip to `dest` (H.264/AAC MP4 with faststart).

    Args:
        words: the clip's transcript words, times relative to the source; their `speaker`
            labels (when present) tell the reframing who speaks when.
        plan: a reframe plan made earlier with `plan_clip` (tests and benchmarks inspect it);
            planned here when None.
    """
    duration = spec.end_s - spec.start_s
    if duration <= 0:
        raise MediaError("clip has no duration")
    src_w, src_h = src_size
    crop_w, crop_h = crop_size(src_w, src_h, spec.aspect_ratio)
    out_w, out_h = output_size(spec.aspect_ratio, spec.short_side)
    if spec.face_tracking or spec.layout == "center" or plan is not None:
        if plan is None:
            plan = plan_clip(src, spec, src_size=src_size, words=words)
        video = video_filter(plan, (out_w, out_h), source="")
    else:
        x_expr = crop_x_expression(motion_centres(src, spec.start_s, duration), src_w, crop_w)
        y = (src_h - crop_h) // 2
        video = (
            f"crop={crop_w}:{crop_h}:'{x_expr}':{y},"
            f"scale={out_w}:{out_h}:flags={SCALE_FLAGS},setsar=1"
        )
    if spec.ass_path is not None:
        video += f",ass=filename={spec.ass_path}"
    audio = f"loudnorm=I={spec.loudness_lufs}:TP=-1.5:LRA=11,aresample=48000"
    if spec.fade_out_s > 0:
        fade = min(spec.fade_out_s, duration)
        audio += f",afade=t=out:st={duration - fade:.3f}:d={fade:.3f}"
    args = [
        # Input seeking with re-encoding is frame-accurate: ffmpeg decodes from the previous
        # keyframe and drops frames before the cut point.
        "-ss",
        f"{spec.start_s:.3f}",
        "-i",
        str(src),
        "-t",
        f"{duration:.3f}",
        "-filter_complex",
        f"[0:v:0]{video}[v];[0:a:0]{audio}[a]",
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-preset",
        spec.preset,
        "-crf",
        str(spec.crf),
        *(("-x264-params", spec.x264_params) if spec.x264_params else ()),
        # A keyframe every KEYFRAME_S: the poster-frame choice decodes keyframes only
        # (pipelines/render/poster.py), and players seek faster.
        "-force_key_frames",
        f"expr:gte(t,n_forced*{KEYFRAME_S:g})",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-movflags",
        "+faststart",
        str(dest),
    ]
    run_ffmpeg(args, timeout_s=_RENDER_TIMEOUT_S, step="render")
    return dest


def poster_frame(clip: Path, dest: Path) -> Path:
    """The clip's poster JPEG: a sharp frame with an open-eyed face, else its peak
    (pipelines/render/poster.py)."""
    return thumbnail(clip, dest, choose_poster(clip).t)


def thumbnail(clip: Path, dest: Path, at_s: float) -> Path:
    """A JPEG frame of the rendered clip at `at_s`."""
    args = ["-ss", f"{at_s:.3f}", "-i", str(clip), "-frames:v", "1", "-q:v", "3", str(dest)]
    run_ffmpeg(args, timeout_s=_RENDER_TIMEOUT_S, step="thumbnail")
    return dest
