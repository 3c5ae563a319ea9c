"""Object keys. All media keys are built here from ids we generated; never from user input."""

from __future__ import annotations

from uuid import UUID

from clipforge.storage.base import check_key

_ALLOWED_EXTS = {
    "mp4",
    "mov",
    "mkv",
    "webm",
    "m4a",
    "mp3",
    "wav",
    "flac",
    "bin",
    "jpg",
    "srt",
    "vtt",
    "ass",
}


def _ext(ext: str) -> str:
    ext = ext.lower().lstrip(".")
    return ext if ext in _ALLOWED_EXTS else "bin"


def original_key(video_id: UUID, ext: str = "bin") -> str:
    """Where an imported/uploaded original lives."""
    return check_key(f"videos/{video_id}/original.{_ext(ext)}")


def audio_key(video_id: UUID) -> str:
    """The 16 kHz mono FLAC track import extracts once, for transcribe and detect to read."""
    return check_key(f"videos/{video_id}/audio.flac")


# Uploads waiting for their import; removed once imported (`clipforge.ops.uploads` sweeps
# the ones nothing will import).
UPLOADS_PREFIX = "uploads/"


def upload_key(video_id: UUID) -> str:
    """Where a client PUTs a presigned upload before import validates it."""
    return check_key(f"{UPLOADS_PREFIX}{video_id}/source.bin")


# Content types of an export's files (extension of `export_key`), as stored and as served.
EXPORT_CONTENT_TYPES = {
    "mp4": "video/mp4",
    "jpg": "image/jpeg",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "ass": "text/x-ssa",
}


def export_key(video_id: UUID, export_id: UUID, ext: str = "mp4") -> str:
    """A rendered clip export (or its thumbnail / caption file by extension)."""
    return check_key(f"videos/{video_id}/exports/{export_id}.{_ext(ext)}")


def video_prefix(video_id: UUID) -> str:
    """Every object of one video (for deletion)."""
    return f"videos/{video_id}/"
