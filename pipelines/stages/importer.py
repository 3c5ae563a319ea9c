"""Import stage: fetch (SSRF-safe) or locate the source, validate and probe it, store the original."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from clipforge.errors import MediaError, NotFound
from clipforge.fetch import download, parse_networks
from clipforge.media import probe
from clipforge.media.errors import NoAudioStream, NoVideoStream
from clipforge.settings import Settings
from clipforge.storage import create_store
from clipforge.storage.keys import original_key, upload_key
from pipelines.config import ImportConfig
from pipelines.rows import Row

_EXT_BY_FORMAT = {
    "mov,mp4,m4a,3gp,3g2,mj2": "mp4",
    "matroska,webm": "mkv",
    "mp3": "mp3",
    "wav": "wav",
}


def import_row(row: Row, *, settings: Settings, config: ImportConfig) -> Row:
    """Bring one video's source into storage; returns media facts for the video row."""
    video_id = uuid.UUID(row["video_id"])
    store = create_store(settings)
    with tempfile.TemporaryDirectory(prefix="cf-import-") as tmp:
        local = Path(tmp) / "source"  # named in user-facing errors
        kind = row["source_kind"]
        if kind == "url":
            download(
                row["source_url"],
                local,
                max_bytes=config.max_source_bytes,
                timeout_s=config.fetch_timeout_s,
                allowed=parse_networks(settings.fetch_allow_cidrs),
            )
        elif kind == "upload":
            try:
                store.download_file(upload_key(video_id), local)
            except NotFound:
                raise MediaError(
                    "no uploaded file: PUT the video to the upload URL first"
                ) from None
        else:  # "file": a path on this machine (the embedded CLI)
            source = Path(row["source_url"])
            if not source.is_file():
                raise MediaError(f"{source} does not exist or is not a file")
            shutil.copyfile(source, local)
        size = local.stat().st_size
        if size > config.max_source_bytes:
            raise MediaError(f"source is {size} bytes; the limit is {config.max_source_bytes}")
        info = probe(local)  # typed MediaError for empty, corrupt, non-media input
        if not info.has_audio:
            raise NoAudioStream(local)  # nothing to transcribe
        if not info.has_video:
            raise NoVideoStream(local)  # nothing to cut clips from
        if info.duration_s > config.max_duration_s:
            raise MediaError(
                f"source is {info.duration_s:.0f} s long; the limit is {config.max_duration_s:.0f} s"
            )
        key = original_key(video_id, _EXT_BY_FORMAT.get(info.format_name, "bin"))
        store.put_file(key, local)
    return {
        "job_id": row["job_id"],
        "video_id": str(video_id),
        "original_key": key,
        "size_bytes": size,
        "duration_s": info.duration_s,
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "has_audio": info.has_audio,
    }
