"""`report.html` for `clipforge process`: clips to watch and download, a score timeline and a
transcript that seeks a preview of the source.

One self-contained file (inline CSS, SVG and script) that opens from the output folder with no
server and no network. Clips, thumbnails, caption files and the source preview are referenced by
relative path, except the captions shown on the videos: Chromium refuses `<track>` files from
file:// pages ("file: URLs are treated as unique security origins"), so the WebVTT text is
inlined as a data: URL. Everything taken from a transcript is HTML-escaped.

The preview shows what the file shows: the clips have their captions burned in, so their
WebVTT tracks start hidden (no `default`; Chromium would draw them over the burned ones) and a
button per clip shows them. Cards speak the creator's words; the scorer's model name stays in
`clips.json`.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from clipforge.storage.base import ObjectStore
from models.caption import Cue
from models.caption_formats import to_vtt
from pipelines.local.report_assets import CSS, JS, LAYOUT_WORDS, SCORE_HELP, SUBSCORE_HELP
from pipelines.local.report_svg import clock, is_ready, timeline_html
from pipelines.local.report_transcript import transcript_html

esc = html.escape
_DOWNLOADS = (
    ("mp4", "Video (MP4)"),
    ("srt", "Captions (SRT)"),
    ("vtt", "Captions (WebVTT)"),
    ("ass", "Styled captions (ASS)"),
    ("thumbnail", "Thumbnail (JPEG)"),
)


def copy_source(
    out_dir: Path, source: str, store: ObjectStore | None = None, original_key: str | None = None
) -> str | None:
    """Put the source video into `out_dir` as `source.<ext>` for the report's preview player.

    A local source is hard-linked when it is on the same disk (a long video is not stored
    twice) and copied otherwise; a URL source comes from the stored original. Returns the name
    relative to `out_dir`, or None when there is nothing to place.
    """
    local = Path(source).expanduser()
    if local.is_file():
        dest = out_dir / f"source{local.suffix.lower() or '.mp4'}"
        dest.unlink(missing_ok=True)
        try:
            os.link(local.resolve(), dest)
        except OSError:
            shutil.copyfile(local, dest)
        return dest.name
    if store is not None and original_key:
        dest = out_dir / f"source{PurePosixPath(original_key).suffix}"
        store.download_file(original_key, dest)
        return dest.name
    return None


def _vtt_data_url(vtt: str) -> str:
    return "data:text/vtt;base64," + base64.b64encode(vtt.encode("utf-8")).decode("ascii")


def _track(files: Mapping[str, str], root: Path | None, lang: str) -> str:
    rel = files.get("vtt")
    if not rel:
        return ""
    path = root / rel if root is not None else None
    src = _vtt_data_url(path.read_text("utf-8")) if path is not None and path.is_file() else rel
    return f'<track kind="captions" src="{esc(src)}" srclang="{esc(lang)}" label="Captions">'


def _cc_button(video_id: str, what: str) -> str:
    """The toggle that shows a video's caption track (the script keeps its state and text)."""
    return (
        f'<button type="button" class="cc" data-video="{video_id}" aria-pressed="false" '
        f'data-what="{esc(what)}">Show {esc(what)}</button>'
    )


def _copy_row(clip_id: str, kind: str, text: str) -> str:
    return (
        f'<div class="copyrow"><span class="lbl">{kind.capitalize()}</span>'
        f'<span class="text" id="{clip_id}-{kind}">{esc(text)}</span>'
        f'<button type="button" data-copy="{clip_id}-{kind}" '
        f'aria-label="Copy the {kind} of {clip_id.replace("-", " ")}">Copy</button></div>'
    )


def _subscores(clip_id: str, values: Mapping[str, float]) -> str:
    rows = []
    for name, value in values.items():
        label, help_text = SUBSCORE_HELP.get(name, (name, ""))
        pct = min(max(float(value), 0.0), 1.0) * 100
        rows.append(
            f'<li><span title="{esc(help_text)}">{esc(label)}</span>'
            f'<span class="bar" aria-hidden="true"><i style="width:{pct:.0f}%"></i></span>'
            f'<span class="val">{pct:.0f}</span></li>'
        )
    name = clip_id.replace("-", " ")
    return f'<ul class="subs" aria-label="Sub-scores of {name}, 0 to 100">{"".join(rows)}</ul>'


def _media(clip: Mapping[str, Any], clip_id: str, root: Path | None, lang: str) -> str:
    files: Mapping[str, str] = clip.get("files") or {}
    if is_ready(clip):
        track = _track(files, root, lang)
        toggle = (
            f'<p class="cc-row">{_cc_button(f"{clip_id}-video", "caption file")}'
            '<span class="muted">captions are burned into the clip; this overlays the '
            "separate .vtt file</span></p>"
            if track
            else ""
        )
        poster = f' poster="{esc(files["thumbnail"])}"' if files.get("thumbnail") else ""
        links = "".join(
            f'<li><a href="{esc(files[key])}" download '
            f'aria-label="Download {clip_id.replace("-", " ")}: {label}">{label}</a></li>'
            for key, label in _DOWNLOADS
            if files.get(key)
        )
        return (
            f'<video id="{clip_id}-video" controls playsinline preload="metadata" '
            f'src="{esc(files["mp4"])}"{poster} '
            f'aria-label="Clip #{clip["rank"]}: {esc(clip.get("title") or "")}">'
            f"{track}</video>{toggle}"
            f'<ul class="downloads" aria-label="Downloads">{links}</ul>'
        )
    status = clip.get("export_status")
    if status in ("failed", "ready"):  # "ready" here: the row says ready but the file is missing
        why = clip.get("export_error") or "no clip file was produced"
        return f'<p class="error"><strong>Export failed:</strong> {esc(str(why))}</p>'
    if status:
        return f'<p class="error">Export not finished ({esc(str(status))}).</p>'
    return '<p class="error">Not exported.</p>'


def _card(clip: Mapping[str, Any], root: Path | None, lang: str) -> str:
    clip_id = f"clip-{clip['rank']}"
    start, end = float(clip["start"]), float(clip["end"])
    framing = LAYOUT_WORDS.get(str(clip.get("layout") or ""))
    return (
        f'<article class="clip{"" if is_ready(clip) else " failed"}" id="{clip_id}" '
        f'aria-labelledby="{clip_id}-h"><h3 id="{clip_id}-h">#{clip["rank"]} '
        f"{esc(clip.get('title') or 'Untitled clip')}</h3>"
        f"{_media(clip, clip_id, root, lang)}"
        f'<p class="meta">{clock(start)} to {clock(end)} ({end - start:.0f} s) · score '
        f"<strong>{float(clip['score']):.1f}</strong> / 100</p>"
        f"{_copy_row(clip_id, 'title', clip.get('title') or '')}"
        f"{_copy_row(clip_id, 'hook', clip.get('hook') or '')}"
        f"<p><strong>Why this clip:</strong> {esc(clip.get('reason') or '')}</p>"
        f"{_subscores(clip_id, clip.get('sub_scores') or {})}"
        + (f'<p class="muted">Framing: {esc(framing)}</p>' if framing else "")
        + "</article>"
    )


def _source_player(segments: Sequence[Mapping[str, Any]], source_video: str, lang: str) -> str:
    cues = [
        Cue(float(s["start"]), float(s["end"]), (s["text"].strip(),))
        for s in segments
        if s["text"].strip()
    ]
    track = (
        f'<track kind="captions" src="{_vtt_data_url(to_vtt(cues))}" srclang="{esc(lang)}" '
        'label="Transcript">'
    )
    return (
        f'<div class="source"><video id="source-video" controls playsinline preload="metadata" '
        f'src="{esc(source_video)}" aria-label="Source video">{track}</video>'
        f'<p class="cc-row">{_cc_button("source-video", "transcript captions")}'
        '<span class="muted">Click a transcript line to play the source from there.</span></p>'
        "</div>"
    )


def _help() -> str:
    items = "".join(
        f"<dt>{esc(label)}</dt><dd>{esc(text)}</dd>" for label, text in SUBSCORE_HELP.values()
    )
    return (
        f"<p>{esc(SCORE_HELP)}</p><details><summary>What each sub-score measures</summary>"
        f'<dl class="help">{items}</dl></details>'
    )


def _studio_link(studio_url: str | None) -> str:
    if not studio_url:
        return ""
    return (
        f'<p class="studio"><a href="{esc(studio_url)}">Edit these clips in ClipForge Studio</a>'
        " (move their bounds, correct caption words, export again; served by the running "
        "<code>clipforge api</code>)</p>"
    )


def render_report(
    *,
    source: str,
    transcript: Mapping[str, Any],
    clips: Sequence[Mapping[str, Any]],
    timeline: Sequence[Sequence[float]],
    root: Path | None = None,
    source_video: str | None = None,
    studio_url: str | None = None,
) -> str:
    """The whole report page.

    Args:
        source: what the user processed (path or URL), shown as-is.
        transcript: `Transcript.to_dict()`.
        clips: the clip docs of `clips.json`; `files` paths are relative to the output folder,
            and a clip without `files["mp4"]` is listed with `export_error` instead of a player.
        timeline: `[start, end, score]` per scored window.
        root: the output folder, to inline each clip's WebVTT captions (else linked).
        source_video: the source's path relative to the output folder, for the preview player.
        studio_url: the video's studio page on a running API server, linked from the top;
            None (no server) keeps the page free of any link to a server.
    """
    lang = str(transcript.get("language") or "en")
    segments = transcript.get("segments", [])
    duration = float(transcript.get("duration") or 0.0)
    cards = "".join(_card(clip, root, lang) for clip in clips)
    player = _source_player(segments, source_video, lang) if source_video else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>ClipForge report: {esc(Path(source).name or source)}</title>"
        f"<style>{CSS}</style></head><body><main>"
        f'<h1>ClipForge report</h1><p class="meta">Source: {esc(source)} · {clock(duration)} · '
        f"{len(clips)} clip{'' if len(clips) == 1 else 's'}</p>"
        + _studio_link(studio_url)
        + '<div id="status" class="toast" role="status" aria-live="polite"></div>'
        f"<h2>Highlight scores</h2>{timeline_html(duration, timeline, clips)}"
        f"<h2>Clips</h2>{_help()}<div class='clips'>{cards}</div>"
        f"<h2>Transcript</h2>{player}"
        f'<div class="transcript">{transcript_html(segments, seek=bool(source_video))}</div>'
        f"</main><script>{JS}</script></body></html>"
    )
