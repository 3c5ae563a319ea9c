"""Probe a media file: duration, streams, picture size, frame rate, rotation.

Reads container headers through PyAV and decodes at most one video frame (the display rotation
lives in per-frame side data), so probing a multi-hour file takes milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import av
import av.container

from clipforge.media.container import BAD_DATA_ERRORS, open_input, reason, video_streams
from clipforge.media.errors import CorruptMedia, EmptyMedia, NoAudioStream, NoVideoStream


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What a media file holds.

    Attributes:
        duration_s: duration in seconds (longest stream).
        size_bytes: file size in bytes.
        format_name: FFmpeg demuxer name, e.g. ``mov,mp4,m4a,3gp,3g2,mj2``.
        has_audio: the file has at least one audio stream.
        has_video: the file has at least one video stream (cover art does not count).
        width: displayed width in pixels (rotation applied), None without video.
        height: displayed height in pixels (rotation applied), None without video.
        fps: average frame rate of the first video stream, None without video.
        rotation: display rotation in degrees counter-clockwise (0, 90, 180, 270).
        video_codec: codec name of the first video stream, e.g. ``h264``.
        audio_codec: codec name of the first audio stream, e.g. ``aac``.
        audio_sample_rate: sample rate of the first audio stream in Hz.
        audio_channels: channel count of the first audio stream.
    """

    duration_s: float
    size_bytes: int
    format_name: str
    has_audio: bool
    has_video: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    rotation: int = 0
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None


def probe(path: str | Path) -> MediaInfo:
    """Describe the media file at `path`.

    Raises:
        EmptyMedia: the file has 0 bytes, or it has streams but no duration.
        CorruptMedia: the bytes are not a readable container, or it holds no audio or video.
    """
    path = Path(path)
    with open_input(path) as container:
        if container.format.name in _TEXT_DEMUXERS:
            raise CorruptMedia(path, "it is a text file, not audio or video")
        videos = video_streams(container)
        audios = list(container.streams.audio)
        if not videos and not audios:
            raise CorruptMedia(path, "no audio or video stream")
        duration = _duration_s(container)
        if duration <= 0:
            raise EmptyMedia(
                path, "the media has no duration: no decodable frames (empty or corrupt)"
            )
        info = MediaInfo(
            duration_s=duration,
            size_bytes=path.stat().st_size,
            format_name=container.format.name,
            has_audio=bool(audios),
            has_video=bool(videos),
        )
        if audios:
            info = _with_audio(info, audios[0])
        if videos:
            info = _with_video(info, container, videos[0], path)
        return info


# FFmpeg renders any text file as "video" through its ANSI-art demuxer; for us it is not media.
_TEXT_DEMUXERS = frozenset({"tty"})


def require_clip_source(info: MediaInfo, path: str | Path) -> None:
    """Clips need speech to transcribe and a picture to cut: refuse a file without either."""
    if not info.has_audio:
        raise NoAudioStream(path)
    if not info.has_video:
        raise NoVideoStream(path)


def _duration_s(container: av.container.InputContainer) -> float:
    if container.duration is not None:
        return float(container.duration / av.time_base)
    # Some demuxers only know per-stream durations.
    spans = [
        float(s.duration * s.time_base)
        for s in container.streams
        if s.duration is not None and s.time_base is not None
    ]
    return max(spans, default=0.0)


def _with_audio(info: MediaInfo, stream: av.AudioStream) -> MediaInfo:
    ctx = stream.codec_context
    return replace(
        info,
        audio_codec=ctx.name,
        audio_sample_rate=int(ctx.sample_rate),
        audio_channels=int(ctx.channels),
    )


def _with_video(
    info: MediaInfo, container: av.container.InputContainer, stream: av.VideoStream, path: Path
) -> MediaInfo:
    rotation = _rotation(container, stream, path)
    width, height = int(stream.codec_context.width), int(stream.codec_context.height)
    if rotation in (90, 270):
        width, height = height, width
    rate = stream.average_rate or stream.guessed_rate
    return replace(
        info,
        width=width,
        height=height,
        fps=float(rate) if rate else None,
        rotation=rotation,
        video_codec=stream.codec_context.name,
    )


def _rotation(container: av.container.InputContainer, stream: av.VideoStream, path: Path) -> int:
    """Display rotation from the first frame's display matrix, normalised to 0/90/180/270."""
    try:
        frame = next(container.decode(stream), None)
    except BAD_DATA_ERRORS as exc:
        raise CorruptMedia(path, f"video stream cannot be decoded: {reason(exc)}") from exc
    if frame is None:
        raise EmptyMedia(path, "the video stream has no frames")
    return round(frame.rotation / 90.0) % 4 * 90
