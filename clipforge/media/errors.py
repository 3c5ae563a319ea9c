"""Typed media errors.

All subclass `clipforge.errors.MediaError` (HTTP 422, never retried): a corrupt or empty upload
will not get better by trying again, so the job goes straight to a clear failure message.
"""

from __future__ import annotations

from pathlib import Path

from clipforge.errors import ClipForgeError, MediaError


class CorruptMedia(MediaError):
    """The file is not a media container ffmpeg can read (garbled or truncated bytes)."""

    code = "corrupt_media"

    def __init__(self, path: str | Path, detail: str = "") -> None:
        reason = f": {detail}" if detail else ""
        super().__init__(f"{Path(path).name} is corrupt or not a supported media file{reason}")


class EmptyMedia(MediaError):
    """The file has no bytes, or its streams hold no decodable samples or frames."""

    code = "empty_media"

    def __init__(self, path: str | Path, detail: str = "the file is empty (0 bytes)") -> None:
        super().__init__(f"{Path(path).name}: {detail}")


class NoAudioStream(MediaError):
    """Audio was required but the file has no audio stream (e.g. a screen recording)."""

    code = "no_audio_stream"

    def __init__(self, path: str | Path) -> None:
        super().__init__(f"{Path(path).name} has no audio stream")


class NoVideoStream(MediaError):
    """Video was required but the file has no video stream (e.g. a podcast's audio file)."""

    code = "no_video_stream"

    def __init__(self, path: str | Path) -> None:
        super().__init__(f"{Path(path).name} has no video stream")


class ToolTimeout(ClipForgeError):
    """A media tool (ffmpeg) ran past its time limit and was killed.

    Not the input's fault as far as anyone knows (a loaded host is slow too), so the job may try
    again, spending an attempt, as it did when the timeout surfaced as an unknown exception.
    """

    retryable = True
    code = "media_tool_timeout"

    @classmethod
    def of(cls, step: str, timeout_s: float) -> ToolTimeout:
        """The error for ffmpeg's `step` killed after `timeout_s` (one-argument constructor, so
        it pickles across Ray like the other errors)."""
        return cls(f"ffmpeg {step} ran longer than {timeout_s:g} s and was stopped")
