"""Pictures of the face fixtures (`face_pan`, `two_speakers`) for scripts/make_test_media.py.

The face is real: NASA's public-domain portrait of astronaut Eileen Collins that ships inside the
scikit-image wheel (`skimage.data.astronaut()`, 512x512), so a face detector sees a real face and
the truth boxes come from where the portrait is pasted. Frames are composed in numpy and piped to
ffmpeg as raw RGB, so every pixel position is known exactly.

The face box inside the photograph was measured by hand (hairline to chin, cheek to cheek, the
region a face detector reports); the mouth centre and half-width likewise. Mouths are animated by
the speaker's own short-time speech energy: a dark ellipse that opens with the voice, so
mouth-region motion correlates with speech as in a real talking-head video.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipforge.media.ffmpeg import ffmpeg_write, run_ffmpeg

FPS = 25
WIDTH, HEIGHT = 960, 540
# Hand-measured in the 512x512 photograph: face box (x, y, w, h) and mouth (centre x, y, half-width).
_PHOTO_FACE = (172, 68, 106, 114)
_PHOTO_MOUTH = (226, 147, 19)
# Head and shoulders cut out of the photograph (x, y, w, h), then scaled: a face about 140 px wide
# in a 540-line frame, small enough that a 9:16 crop (302 px wide) holds it with room to spare.
_CUTOUT = (115, 0, 220, 310)
_SCALE = 1.3
_BACKDROP = (188, 178, 184)  # close to the photograph's grey studio backdrop
_MOUTH_RGB = np.array([62, 22, 28], dtype=np.float32)

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Portrait:
    """A head-and-shoulders cutout with its face box and mouth, in cutout pixels.

    Attributes:
        rgb: (h, w, 3) uint8 picture.
        face: face box (x, y, w, h).
        mouth: mouth centre x, y and half-width.
    """

    rgb: np.ndarray
    face: Box
    mouth: tuple[float, float, float]


def portrait(
    *, mirror: bool = False, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> Portrait:
    """The astronaut cutout, optionally mirrored and colour-shifted (a second, distinct person)."""
    from skimage import data  # dev dependency, only needed to build these fixtures

    x0, y0, cw, ch = _CUTOUT
    photo = np.ascontiguousarray(data.astronaut()[y0 : y0 + ch, x0 : x0 + cw])
    w, h = round(cw * _SCALE) // 2 * 2, round(ch * _SCALE) // 2 * 2
    rgb = _scale_rgb(photo, w, h)
    rgb = np.clip(rgb.astype(np.float32) * np.array(tint, np.float32), 0, 255).astype(np.uint8)
    fx, fy, fw, fh = _PHOTO_FACE
    face = (
        round((fx - x0) * _SCALE),
        round((fy - y0) * _SCALE),
        round(fw * _SCALE),
        round(fh * _SCALE),
    )
    mx, my, mr = _PHOTO_MOUTH
    mouth = ((mx - x0) * _SCALE, (my - y0) * _SCALE, mr * _SCALE)
    if mirror:
        rgb = np.ascontiguousarray(rgb[:, ::-1])
        face = (w - face[0] - face[2], face[1], face[2], face[3])
        mouth = (w - 1 - mouth[0], mouth[1], mouth[2])
    return Portrait(rgb=rgb, face=face, mouth=mouth)


def _scale_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Lanczos-scale one RGB picture with ffmpeg (no imaging library needed)."""
    h, w = rgb.shape[:2]
    args = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-i", "-"]
    args += ["-vf", f"scale={width}:{height}:flags=lanczos", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    out = run_ffmpeg([*args, "-"], timeout_s=120, step="test_media", input=rgb.tobytes())
    return np.frombuffer(out, np.uint8).reshape(height, width, 3)


def frame_energy(samples: np.ndarray, rate: int, frames: int) -> np.ndarray:
    """Per-video-frame speech energy in 0..1: RMS over 40 ms around each frame time, divided by
    the voice's 90th percentile of voiced frames (so both voices open their mouths alike)."""
    x = samples.astype(np.float32)
    half = int(0.02 * rate)
    centres = (np.arange(frames) / FPS * rate).astype(int)
    rms = np.array(
        [
            np.sqrt(np.mean(x[max(0, c - half) : c + half] ** 2)) if c < len(x) else 0.0
            for c in centres
        ]
    )
    voiced = rms[rms > 0.02 * (rms.max() or 1.0)]
    ref = float(np.percentile(voiced, 90)) if voiced.size else 1.0
    return np.clip(rms / ref, 0.0, 1.0).astype(np.float32)


def paste(frame: np.ndarray, face: Portrait, x: int, y: int, opening: float) -> Box:
    """Paste the portrait with its top-left at (x, y), mouth open by `opening` (0..1); returns
    the face box in frame pixels. The portrait must lie inside the frame."""
    h, w = face.rgb.shape[:2]
    frame[y : y + h, x : x + w] = face.rgb
    if opening > 0.05:
        mx, my, mr = face.mouth
        ry = 1.0 + 8.0 * opening  # the lips part with the voice, the jaw dropping downwards
        my += 0.4 * ry - 3.0
        y0, y1 = int(my - ry) - 1, int(my + ry) + 2
        x0, x1 = int(mx - mr) - 1, int(mx + mr) + 2
        yy, xx = np.mgrid[y0:y1, x0:x1]
        inside = ((xx - mx) / mr) ** 2 + ((yy - my) / ry) ** 2 <= 1.0
        region = frame[y + y0 : y + y1, x + x0 : x + x1]
        region[inside] = (0.15 * region[inside] + 0.85 * _MOUTH_RGB).astype(np.uint8)
    fx, fy, fw, fh = face.face
    return (x + fx, y + fy, fw, fh)


def distractor_texture(width: int, height: int) -> np.ndarray:
    """A busy, saturated colour texture that tiles seamlessly (whole periods across each side)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = 2 * np.pi * xs / width, 2 * np.pi * ys / height
    w = np.sin(4 * u) + np.sin(3 * v) + np.sin(2 * u + 2 * v) + np.sin(5 * u - 3 * v)
    phase = np.pi * w
    rgb = np.stack([np.sin(phase), np.sin(phase + 2.1), np.sin(phase + 4.2)], axis=-1)
    # Smooth colour waves, not hard edges: as busy for a motion measure, a fifth of the bytes.
    return (127.5 + 127.5 * rgb).astype(np.uint8)


def distractor(texture: np.ndarray, i: int) -> np.ndarray:
    """Frame `i` of the distractor: the texture scrolling fast (about 300 px/s) along a turning
    direction, far more frame-to-frame change than a talking face, so a crop that follows motion
    follows it. Whole-pixel shifts keep it cheap to encode."""
    dx = round(12 * i + 40 * np.sin(i / 20))
    dy = round(5 * i + 60 * np.cos(i / 15))
    return np.roll(texture, (dy, dx), axis=(0, 1))


def backdrop() -> np.ndarray:
    """An empty frame of studio backdrop with a soft vertical gradient."""
    shade = np.linspace(1.06, 0.9, HEIGHT, dtype=np.float32)[:, None, None]
    rgb = np.array(_BACKDROP, np.float32)[None, None, :] * shade
    return np.broadcast_to(np.clip(rgb, 0, 255).astype(np.uint8), (HEIGHT, WIDTH, 3)).copy()


def speakers() -> tuple[Portrait, Portrait]:
    """The two people of `two_speakers`: the astronaut (left), mirrored and cooler-toned (right)."""
    return portrait(), portrait(mirror=True, tint=(0.82, 0.95, 1.2))


def face_pan_frames(energy: np.ndarray, boxes: list[Box]) -> Iterator[bytes]:
    """The portrait pans back and forth across the left half (one sweep every 5 s) beside the
    scrolling distractor on the right half; appends each frame's face box to `boxes`."""
    face = portrait()
    h, w = face.rgb.shape[:2]
    base = backdrop()
    texture = distractor_texture(WIDTH // 2, HEIGHT)
    span = WIDTH // 2 - w
    for i, opening in enumerate(energy):
        t = i / FPS
        frame = base.copy()
        x = round(span * 0.5 * (1 - np.cos(2 * np.pi * t / 10.0)))
        boxes.append(paste(frame, face, x, HEIGHT - h, float(opening)))
        frame[:, WIDTH // 2 :] = distractor(texture, i)
        yield frame.tobytes()


def two_speaker_frames(
    energies: tuple[np.ndarray, np.ndarray], boxes: tuple[list[Box], list[Box]]
) -> Iterator[bytes]:
    """Two people side by side (the astronaut left; mirrored and cooler-toned right), each mouth
    opening with its own voice, each head swaying a few pixels; face boxes go to `boxes`."""
    faces = speakers()
    base = backdrop()
    for i in range(len(energies[0])):
        t = i / FPS
        frame = base.copy()
        for k, face in enumerate(faces):
            h, w = face.rgb.shape[:2]
            centre = WIDTH // 4 + k * WIDTH // 2
            sway = round(6 * np.sin(2 * np.pi * t / (7.0 + 2 * k) + k))
            box = paste(frame, face, centre - w // 2 + sway, HEIGHT - h, float(energies[k][i]))
            boxes[k].append(box)
        yield frame.tobytes()


def encode(frames: Iterator[bytes], wav: Path, out: Path) -> None:
    """Encode raw RGB frames (WIDTH x HEIGHT at FPS) with the WAV as AAC audio into an MP4."""
    args = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS)]
    args += ["-i", "-", "-i", str(wav), "-c:v", "libx264", "-preset", "veryfast", "-crf", "28"]
    args += ["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-ar", "44100", "-ac", "1"]
    args += ["-movflags", "+faststart", "-f", "mp4", str(out)]
    ffmpeg_write(args, frames, timeout_s=1800, step="test_media")
