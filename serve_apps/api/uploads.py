"""Receiving uploaded bytes, and checks on them before anything is stored or queued.

Content sniffing by magic numbers (not the client's Content-Type, which is only a claim):
the container families ClipForge can import. A full probe happens later in the import stage;
this only turns away obvious non-media (documents, archives, HTML error pages) with a 415.

A direct upload is written to a temporary file as it arrives (one body part in memory at a
time, hashed on the way for its Idempotency-Key) and stored from that file; `UploadSlots` caps
how many one process receives at once.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipforge.errors import ValidationFailed
from clipforge.media.track import decode_track
from serve_apps.api.errors import UnsupportedMedia, UploadsBusy

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


_SNIFF_BYTES = 512


def require_media(body: bytes) -> str:
    """The sniffed extension of `body` (its start is enough); 415 for bytes that are not an
    audio/video container."""
    if not body:
        raise ValidationFailed("request body is empty")
    ext = sniff_container(body[:_SNIFF_BYTES])
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


class UploadSlots:
    """At most `limit` direct uploads in flight in this process (the event loop's counter)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        """A slot for one upload; `UploadsBusy` (503 + Retry-After) when all are taken."""
        if self.in_use >= self.limit:
            raise UploadsBusy(
                f"this API process already receives {self.limit} uploads; retry shortly"
            )
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1


@dataclass(frozen=True, slots=True)
class SpooledUpload:
    """A request body written to a file.

    Attributes:
        path: the file.
        size: its bytes.
        extension: the sniffed container (`sniff_container`).
        digest: SHA-256 of `prefix` and the body (the upload's idempotency fingerprint).
    """

    path: Path
    size: int
    extension: str
    digest: bytes


async def spool_upload(parts: AsyncIterator[bytes], path: Path, *, prefix: bytes) -> SpooledUpload:
    """Write `parts` to `path` as they arrive; 415 as soon as the start is not media.

    Writes go to the page cache from the event loop: a part (at most uvicorn's 64 KiB read
    buffer) takes microseconds, less than a hop to a thread would.
    """
    hasher = hashlib.sha256(prefix)
    head = b""
    extension: str | None = None
    size = 0
    with path.open("wb") as out:
        async for part in parts:
            if not part:
                continue
            if extension is None:
                head += part[: _SNIFF_BYTES - len(head)]
                if len(head) >= _SNIFF_BYTES:
                    extension = require_media(head)
            hasher.update(part)
            out.write(part)
            size += len(part)
    if extension is None:
        extension = require_media(head)
    return SpooledUpload(path, size, extension, hasher.digest())


@contextmanager
def upload_folder() -> Iterator[Path]:
    """A private temporary folder for one upload's file, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="cf-upload-") as folder:
        yield Path(folder)
