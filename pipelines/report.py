"""`report.html` for `clipforge process`: playable clips, a score timeline and the transcript.

One self-contained file (inline SVG and CSS, clips referenced by relative path), so it opens
from the output folder with no server and no network.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

_W, _H, _PAD = 960, 180, 24


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60:d}:{minutes % 60:02d}:{secs:02d}"


def timeline_svg(
    duration: float, timeline: Sequence[Sequence[float]], clips: Sequence[dict[str, Any]]
) -> str:
    """Window scores over the video (line) with the chosen clips shaded and numbered."""
    span = max(duration, 1e-6)

    def x(t: float) -> float:
        return _PAD + (_W - 2 * _PAD) * min(max(t / span, 0.0), 1.0)

    def y(score: float) -> float:
        return _H - _PAD - (_H - 2 * _PAD) * score / 100.0

    parts = [f'<svg viewBox="0 0 {_W} {_H}" width="100%" role="img" aria-label="highlight scores">']
    for clip in clips:
        left, right = x(clip["start"]), x(clip["end"])
        parts.append(
            f'<rect x="{left:.1f}" y="{_PAD}" width="{max(right - left, 1):.1f}" '
            f'height="{_H - 2 * _PAD}" fill="#ffd54f" opacity="0.5"/>'
            f'<text x="{left + 3:.1f}" y="{_PAD + 12}" font-size="12">#{clip["rank"]}</text>'
        )
    points = " ".join(f"{x((s + e) / 2):.1f},{y(score):.1f}" for s, e, score in timeline)
    if points:
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="#1565c0" stroke-width="1.5"/>'
        )
    parts.append(
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#555"/>'
        f'<text x="{_PAD}" y="{_H - 6}" font-size="11">0:00:00</text>'
        f'<text x="{_W - _PAD - 48}" y="{_H - 6}" font-size="11">{_clock(duration)}</text>'
        f'<text x="2" y="{_PAD + 4}" font-size="11">100</text></svg>'
    )
    return "".join(parts)


def render_report(
    *,
    source: str,
    transcript: dict[str, Any],
    clips: Sequence[dict[str, Any]],
    timeline: Sequence[Sequence[float]],
) -> str:
    """The whole report page."""
    esc = html.escape
    cards = []
    for clip in clips:
        files = clip["files"]
        cards.append(
            f'<div class="clip"><video controls preload="metadata" src="{esc(files["mp4"])}" '
            f'poster="{esc(files.get("thumbnail", ""))}"></video>'
            f"<h3>#{clip['rank']} {esc(clip['title'])}</h3>"
            f'<p class="meta">{_clock(clip["start"])} to {_clock(clip["end"])} · score {clip["score"]:.1f}</p>'
            f"<p>{esc(clip['reason'])}</p></div>"
        )
    lines = "".join(
        f'<p><span class="t">{_clock(seg["start"])}</span> {esc(seg["text"])}</p>'
        for seg in transcript["segments"]
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>ClipForge report</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:auto;padding:1em}"
        ".clips{display:flex;flex-wrap:wrap;gap:16px}.clip{width:300px}.clip video{width:100%;"
        "background:#000}.meta,.t{color:#666;font-size:.9em}.t{font-family:monospace}</style></head>"
        f"<body><h1>ClipForge report</h1><p>Source: {esc(source)}</p>"
        f"<h2>Highlight scores</h2>{timeline_svg(transcript['duration'], timeline, clips)}"
        f"<h2>Clips</h2><div class='clips'>{''.join(cards)}</div>"
        f"<h2>Transcript</h2>{lines}</body></html>"
    )
