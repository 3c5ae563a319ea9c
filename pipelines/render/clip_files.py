"""One clip's files from a local source: the MP4 with burned captions, thumbnail, SRT/VTT/ASS.

Shared by the export stage (which uploads the files to the object store) and the in-process
notebook API (`pipelines.local.notebook.process(local=True)`, which keeps them in a folder), so a clip
renders the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clipforge.errors import MediaError
from clipforge.media import probe
from clipforge.types import Word
from models.caption import build_cues
from models.caption_formats import cue_options, resolve_style, to_ass, to_srt, to_vtt
from pipelines.config import ExportConfig
from pipelines.render.clip import RenderSpec, output_size, plan_clip, poster_frame, render_clip
from pipelines.render.clip_end import fade_out_at


@dataclass(frozen=True, slots=True)
class ClipFiles:
    """The rendered files of one clip.

    Attributes:
        mp4 / jpg / srt / vtt / ass: paths of the video, thumbnail and caption files.
        duration_s: real duration of the rendered MP4.
    """

    mp4: Path
    jpg: Path
    srt: Path
    vtt: Path
    ass: Path
    duration_s: float


def render_clip_files(
    src: Path,
    dest: Path,
    *,
    start_s: float,
    end_s: float,
    words: Sequence[Word],
    aspect_ratio: str,
    caption_style: str,
    config: ExportConfig,
    stem: str = "clip",
    layout: str = "auto",
) -> ClipFiles:
    """Render `start_s`..`end_s` of `src` into `dest/<stem>.{mp4,jpg,srt,vtt,ass}`.

    The MP4 has the aspect's preset size (pipelines/render/clip.py PRESETS; `config.short_side`
    below 1080 for drafts); `caption_style` `auto` is `shorts` for short-form aspects. `layout`
    says who the crop follows (clipforge.types.Layout); the words (source times, with speaker
    ids when turns were computed) tell the reframing who speaks when, and the captions keep out
    of the faces it tracks. The JPEG is the poster frame (pipelines/render/poster.py).
    """
    info = probe(src)
    if info.width is None or info.height is None:
        raise MediaError("the source has no video stream to export")
    # The preset's size whatever the source's (render.output_size): a small source is scaled up.
    out_size = output_size(aspect_ratio, config.short_side)
    style = resolve_style(caption_style, aspect_ratio)
    cues = build_cues(words, start_s, end_s, cue_options(style))
    spec = RenderSpec(
        start_s=start_s,
        end_s=end_s,
        aspect_ratio=aspect_ratio,
        short_side=config.short_side,
        ass_path=dest / f"{stem}.ass",
        crf=config.crf,
        preset=config.preset,
        x264_params=config.x264_params,
        loudness_lufs=config.loudness_lufs,
        layout=layout,
        face_tracking=config.face_tracking,
        fade_out_s=fade_out_at(src, end_s),
    )
    size = (info.width, info.height)
    # Planned before the captions are written: they keep out of the faces the crop follows.
    plan = None
    if spec.face_tracking or spec.layout == "center":
        plan = plan_clip(src, spec, src_size=size, words=words)
    dest.mkdir(parents=True, exist_ok=True)
    ass = dest / f"{stem}.ass"
    avoid = plan.face_spans if plan is not None else ()
    ass.write_text(to_ass(cues, style=style, resolution=out_size, avoid=avoid))
    clip = render_clip(src, dest / f"{stem}.mp4", spec, src_size=size, words=words, plan=plan)
    rendered = probe(clip)
    thumb = poster_frame(clip, dest / f"{stem}.jpg")
    srt, vtt = dest / f"{stem}.srt", dest / f"{stem}.vtt"
    srt.write_text(to_srt(cues))
    vtt.write_text(to_vtt(cues))
    return ClipFiles(mp4=clip, jpg=thumb, srt=srt, vtt=vtt, ass=ass, duration_s=rendered.duration_s)
