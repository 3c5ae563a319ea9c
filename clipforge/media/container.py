"""Opening media with PyAV and mapping its failures to typed errors.

PyAV (bundled FFmpeg libraries) is used in-process for reading: no subprocess per call and no
temporary files, and it lets us stream decoded samples in blocks. Only the PyAV errors that mean
"bad input" are mapped; anything else (permissions, bugs) propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import overload

import av
import av.container

from clipforge.media.errors import CorruptMedia, EmptyMedia

# Errors FFmpeg raises for bytes it cannot parse as a container or stream.
BAD_DATA_ERRORS: tuple[type[Exception], ...] = (av.error.InvalidDataError,)


@contextmanager
def open_input(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open `path` for reading; EmptyMedia for 0 bytes, CorruptMedia for unparseable bytes."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise EmptyMedia(path)
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except BAD_DATA_ERRORS as exc:
        raise CorruptMedia(path, reason(exc)) from exc
    try:
        yield container
    finally:
        container.close()


def video_streams(container: av.container.InputContainer) -> list[av.VideoStream]:
    """Real video streams, excluding cover art (attached pictures in audio files)."""
    return [
        s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
    ]


@overload
def decode_frames(
    container: av.container.InputContainer, stream: av.AudioStream, path: str | Path
) -> Iterator[av.AudioFrame]: ...
@overload
def decode_frames(
    container: av.container.InputContainer, stream: av.VideoStream, path: str | Path
) -> Iterator[av.VideoFrame]: ...
def decode_frames(
    container: av.container.InputContainer,
    stream: av.AudioStream | av.VideoStream,
    path: str | Path,
) -> Iterator[av.AudioFrame | av.VideoFrame]:
    """Decoded frames of one stream, in order.

    A damaged packet mid-stream is skipped, as players do. A file cut short after good frames
    ends there; one that fails before any frame is CorruptMedia.
    """
    decoded_any = False
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except BAD_DATA_ERRORS:
                continue
            for frame in frames:
                if isinstance(frame, av.AudioFrame | av.VideoFrame):
                    decoded_any = True
                    yield frame
    except BAD_DATA_ERRORS as exc:
        if not decoded_any:
            raise CorruptMedia(path, f"{stream.type} stream cannot be read: {reason(exc)}") from exc


def reason(exc: Exception) -> str:
    # FFmpeg's message without the file name: paths on the server are not the client's business.
    return str(getattr(exc, "strerror", None) or type(exc).__name__)
