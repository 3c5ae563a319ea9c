"""Sample video frames at a fixed rate and width, as upright RGB arrays.

Frames are decoded in order and only the ones picked are converted (FFmpeg's swscale does the
resize and RGB conversion), so sampling 1 fps from a 30 fps video costs one decode pass plus
1/30 of the conversions. The display rotation is applied, so portrait phone videos come out
portrait.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from clipforge.media.container import decode_frames, open_input, video_streams
from clipforge.media.errors import EmptyMedia, NoVideoStream


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One sampled frame.

    Attributes:
        t: presentation time of the frame in seconds from the start of the media.
        image: RGB uint8 array of shape (height, width, 3), display rotation applied.
    """

    t: float
    image: np.ndarray


def sample_frames(path: str | Path, fps: float, width: int) -> Iterator[Frame]:
    """Yield about `fps` frames per second of video, each `width` pixels wide.

    The height keeps the displayed aspect ratio (rounded to an even number). A frame is taken at
    the first decoded frame at or after each tick `k / fps`, so times are increasing.

    Raises:
        EmptyMedia, CorruptMedia: unreadable input, or a video stream without frames.
        NoVideoStream: the file has no video stream.
    """
    if fps <= 0 or width <= 0:
        raise ValueError("fps and width must be positive")
    with open_input(path) as container:
        streams = video_streams(container)
        if not streams:
            raise NoVideoStream(path)
        stream = streams[0]
        stream.thread_type = "AUTO"  # frame threading: decode is the cost here
        step = 1.0 / fps
        next_tick = 0.0
        emitted = 0
        for frame in decode_frames(container, stream, path):
            t = float(frame.time) if frame.time is not None else None
            if t is None or t + 1e-6 < next_tick:
                continue
            yield Frame(t=t, image=_to_rgb(frame, width, stream.sample_aspect_ratio))
            emitted += 1
            while next_tick <= t + 1e-6:
                next_tick += step
        if emitted == 0:
            raise EmptyMedia(path, "the video stream has no frames")


def _to_rgb(frame: av.VideoFrame, width: int, sar: Fraction | None) -> np.ndarray:
    rotation = round(frame.rotation / 90.0) % 4
    display_w, display_h = frame.width * (sar or Fraction(1)), Fraction(frame.height)
    if rotation % 2:
        display_w, display_h = display_h, display_w
    height = max(2, round(width * display_h / display_w / 2) * 2)
    # Scale in the stored orientation, then rotate: rot90 is a cheap view + copy.
    scaled_w, scaled_h = (height, width) if rotation % 2 else (width, height)
    image: np.ndarray = frame.reformat(width=scaled_w, height=scaled_h, format="rgb24").to_ndarray()
    if rotation:
        image = np.ascontiguousarray(np.rot90(image, k=rotation))
    return image
