"""Export stage: render one clip (cut, reframe, captions, loudness), upload it and its sidecars."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from clipforge.errors import MediaError
from clipforge.media import probe
from clipforge.settings import Settings
from clipforge.storage import create_store
from clipforge.storage.keys import export_key
from clipforge.types import Word
from models.caption import build_cues
from models.caption_formats import to_ass, to_srt, to_vtt
from pipelines.config import ExportConfig
from pipelines.render import RenderSpec, crop_size, output_size, render_clip, thumbnail
from pipelines.rows import Row, unpack


def render_row(row: Row, *, settings: Settings, config: ExportConfig) -> Row:
    """Render the export described by `row`; returns the stored keys and the real duration."""
    video_id, export_id = uuid.UUID(row["video_id"]), uuid.UUID(row["export_id"])
    start, end = float(row["start_s"]), float(row["end_s"])
    words: list[Word] = unpack(row["words"])
    aspect = str(row["aspect_ratio"])
    cues = build_cues(words, start, end)
    store = create_store(settings)
    with tempfile.TemporaryDirectory(prefix="cf-export-") as tmp:
        folder = Path(tmp)
        src = store.download_file(row["original_key"], folder / "src")
        info = probe(src)
        if info.width is None or info.height is None:
            raise MediaError("the source has no video stream to export")
        # Never upscale: the output's short side is at most the crop's short side.
        short_side = min(config.short_side, min(crop_size(info.width, info.height, aspect)))
        ass = folder / "captions.ass"
        ass.write_text(
            to_ass(
                cues,
                style=str(row["caption_style"]),
                resolution=output_size(aspect, short_side),
            )
        )
        spec = RenderSpec(
            start_s=start,
            end_s=end,
            aspect_ratio=aspect,
            short_side=short_side,
            ass_path=ass,
            crf=config.crf,
            preset=config.preset,
            loudness_lufs=config.loudness_lufs,
        )
        clip = render_clip(src, folder / "clip.mp4", spec, src_size=(info.width, info.height))
        rendered = probe(clip)
        thumb = thumbnail(clip, folder / "thumb.jpg", at_s=min(1.0, rendered.duration_s / 2))
        keys = {
            ext: export_key(video_id, export_id, ext) for ext in ("mp4", "jpg", "srt", "vtt", "ass")
        }
        store.put_file(keys["mp4"], clip, content_type="video/mp4")
        store.put_file(keys["jpg"], thumb, content_type="image/jpeg")
        store.put_bytes(keys["srt"], to_srt(cues).encode(), content_type="application/x-subrip")
        store.put_bytes(keys["vtt"], to_vtt(cues).encode(), content_type="text/vtt")
        store.put_file(keys["ass"], ass, content_type="text/x-ssa")
    return {
        "job_id": row["job_id"],
        "export_id": str(export_id),
        "object_key": keys["mp4"],
        "thumbnail_key": keys["jpg"],
        "duration_s": rendered.duration_s,
        "error": "",
        "retryable": False,
    }
