"""The report's score timeline: an inline SVG with a time axis, a score axis and a legend.

Inline (no script, no external file) so the report stays one self-contained page. The drawing
is 960 units wide and scales to the page; the report wraps it in a scroller on narrow screens.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_W, _H = 960, 230
_LEFT, _RIGHT, _TOP, _BOTTOM = 40, 16, 34, 200  # plot area: x in [_LEFT, _W - _RIGHT]
# Tick steps in seconds, smallest first; the first giving at most _MAX_TICKS ticks wins.
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
_MAX_TICKS = 10
CLIP_FILL = "#ffd54f"
FAILED_FILL = "#bdbdbd"
LINE = "#1565c0"


def clock(seconds: float) -> str:
    """`m:ss` under an hour, `h:mm:ss` from an hour on (what video players show)."""
    total = max(int(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def tick_step(duration: float) -> int:
    """Seconds between time-axis ticks: the smallest round step with at most 10 ticks."""
    for step in _STEPS:
        if duration / step <= _MAX_TICKS:
            return step
    return _STEPS[-1] * (int(duration // (_STEPS[-1] * _MAX_TICKS)) + 1)


def is_ready(clip: Mapping[str, Any]) -> bool:
    """Whether a clip doc has a rendered video (a ready export can still lack its file)."""
    return clip.get("export_status") == "ready" and bool((clip.get("files") or {}).get("mp4"))


def _legend() -> str:
    items = (
        f'<line x1="0" y1="-4" x2="18" y2="-4" stroke="{LINE}" stroke-width="2"/>'
        '<text x="24" y="0">window score (0-100)</text>',
        f'<rect x="190" y="-11" width="18" height="12" fill="{CLIP_FILL}" opacity="0.6"/>'
        '<text x="214" y="0">chosen clip (#rank)</text>',
        f'<rect x="370" y="-11" width="18" height="12" fill="{FAILED_FILL}" opacity="0.8"/>'
        '<text x="394" y="0">clip whose export failed</text>',
    )
    return (
        f'<g class="legend" transform="translate({_LEFT},16)" font-size="12">{"".join(items)}</g>'
    )


def _axes(duration: float, x: Callable[[float], float], y: Callable[[float], float]) -> str:
    parts = [
        f'<line x1="{_LEFT}" y1="{_BOTTOM}" x2="{_W - _RIGHT}" y2="{_BOTTOM}" stroke="#555"/>',
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_BOTTOM}" stroke="#555"/>',
    ]
    for score in (0, 50, 100):
        parts.append(
            f'<line x1="{_LEFT - 4}" y1="{y(score):.1f}" x2="{_W - _RIGHT}" y2="{y(score):.1f}" '
            f'stroke="#ddd"/><text x="{_LEFT - 6}" y="{y(score) + 4:.1f}" font-size="11" '
            f'text-anchor="end">{score}</text>'
        )
    step = tick_step(duration)
    t = 0
    while t <= duration + 1e-6:
        parts.append(
            f'<line x1="{x(t):.1f}" y1="{_BOTTOM}" x2="{x(t):.1f}" y2="{_BOTTOM + 5}" '
            f'stroke="#555"/><text class="tick" x="{x(t):.1f}" y="{_BOTTOM + 18}" '
            f'font-size="11" text-anchor="middle">{clock(t)}</text>'
        )
        t += step
    return "".join(parts)


def timeline_svg(
    duration: float, timeline: Sequence[Sequence[float]], clips: Sequence[Mapping[str, Any]]
) -> str:
    """Window scores over the video (line) with the clips shaded and numbered, plus axes and
    a legend. `timeline` holds `[start, end, score]` per candidate window, in any order."""
    span = max(duration, 1e-6)

    def x(t: float) -> float:
        return _LEFT + (_W - _LEFT - _RIGHT) * min(max(t / span, 0.0), 1.0)

    def y(score: float) -> float:
        return _BOTTOM - (_BOTTOM - _TOP) * min(max(score, 0.0), 100.0) / 100.0

    label = f"Highlight score over the {clock(duration)} video, with {len(clips)} clips marked"
    parts = [
        f'<svg id="timeline" viewBox="0 0 {_W} {_H}" width="100%" role="img" '
        f'aria-labelledby="timeline-title"><title id="timeline-title">{html.escape(label)}</title>',
        _legend(),
        _axes(duration, x, y),
    ]
    for clip in clips:
        left, right = x(clip["start"]), x(clip["end"])
        fill, opacity = (CLIP_FILL, 0.5) if is_ready(clip) else (FAILED_FILL, 0.7)
        parts.append(
            f'<rect x="{left:.1f}" y="{_TOP}" width="{max(right - left, 1):.1f}" '
            f'height="{_BOTTOM - _TOP}" fill="{fill}" opacity="{opacity}">'
            f"<title>clip #{clip['rank']}: {clock(clip['start'])} to {clock(clip['end'])}</title>"
            f'</rect><text x="{left + 3:.1f}" y="{_TOP + 13}" font-size="12">#{clip["rank"]}</text>'
        )
    # Windows overlap; their midpoints in time order draw the score as one line.
    points = sorted(((s + e) / 2, score) for s, e, score in timeline)
    if points:
        coords = " ".join(f"{x(t):.1f},{y(score):.1f}" for t, score in points)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{LINE}" stroke-width="1.5"/>'
        )
    parts.append("</svg>")
    return "".join(parts)
