"""Checks on uploaded bytes before anything is stored or queued.

Content sniffing by magic numbers (not the client's Content-Type, which is only a claim):
the container families ClipForge can import. A full probe happens later in the import stage;
this only turns away obvious non-media (documents, archives, HTML error pages) with a 415.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from clipforge.errors import ValidationFailed
from clipforge.media.track import decode_track
from serve_apps.api.errors import UnsupportedMedia

_MEDIA_TYPES = ("video/", "audio/", "application/octet-stream")


def sniff_container(head: bytes) -> str | None:
    """File extension for the container whose signature starts `head`, or None."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        return "mov" if brand == b"qt  " else "m4a" if brand.startswith(b"M4A") else "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head[:64] else "mkv"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head.startswith((b"OggS", b"fLaC")) or (head.startswith(b"RIFF") and head[8:11] == b"AVI"):
        return "bin"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:  # MPEG-TS sync bytes
        return "bin"
    return None


def check_media_type(content_type: str | None) -> None:
    """415 unless the declared type is audio, video or generic binary."""
    if content_type is None or not content_type.lower().startswith(_MEDIA_TYPES):
        raise UnsupportedMedia(
            "send the file as the raw request body with Content-Type video/*, audio/* "
            "or application/octet-stream"
        )


def require_media(body: bytes) -> str:
    """The sniffed extension of `body`; 415 for bytes that are not an audio/video container."""
    if not body:
        raise ValidationFailed("request body is empty")
    ext = sniff_container(body[:512])
    if ext is None:
        raise UnsupportedMedia("the upload is not an audio or video file")
    return ext


def decode_upload(body: bytes, *, max_seconds: float) -> np.ndarray:
    """16 kHz mono float32 samples of an uploaded file; `MediaError` (422) when undecodable."""
    if not body:
        raise ValidationFailed("request body is empty")
    with tempfile.TemporaryDirectory(prefix="cf-asr-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(body)
        audio = decode_track(path)  # the samples import's track holds: one transcript
    if len(audio) / 16000 > max_seconds:
        raise ValidationFailed(
            f"audio is {len(audio) / 16000:.1f}s; the online endpoint takes at most "
            f"{max_seconds:.0f}s (submit longer media as a video)"
        )
    return audio
