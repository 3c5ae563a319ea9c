"""The report's score timeline: a score line, the chosen clips, a time axis and a legend.

The line is an inline SVG stretched to the plot (`preserveAspectRatio="none"`, strokes kept
thin with `vector-effect`); the axis labels, legend and clip markers are HTML placed in percent
of the plot. A scaled drawing would shrink its text to 4 px on a phone, and a fixed-width one
would scroll sideways and hide late clips; this way the timeline fits any width with readable
text and every clip marker inside it. No script, no external file: the report stays one page.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Tick steps in seconds, smallest first; the first giving at most _MAX_TICKS ticks wins.
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
_MAX_TICKS = 10
# A marker label starting this close (percent of the width) after the previous one goes a row
# lower, so the labels of neighbouring clips do not cover each other.
_LABEL_GAP_PCT = 7.0
_LABEL_ROWS = 3
# Past this share of the width a marker's label is right-aligned to stay inside the plot.
_RIGHT_ALIGN_PCT = 85.0


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
    return (
        '<ul class="legend">'
        '<li><i class="key key-line"></i>score of each moment (0-100)</li>'
        '<li><i class="key key-clip"></i>chosen clip (#rank: tap to see it)</li>'
        '<li><i class="key key-failed"></i>clip whose export failed</li></ul>'
    )


def _ticks(duration: float, pct: Callable[[float], float]) -> str:
    step = tick_step(duration)
    spans, t = [], 0
    while t <= duration + 1e-6:
        x = pct(t)
        # The first label starts at the axis and one near the end ends there: none sticks out.
        edge = " first" if t == 0 else " last" if x > 95 else ""
        spans.append(f'<span class="tick{edge}" style="left:{x:.2f}%">{clock(t)}</span>')
        t += step
    return f'<div class="ticks" aria-hidden="true">{"".join(spans)}</div>'


def _markers(clips: Sequence[Mapping[str, Any]], pct: Callable[[float], float]) -> str:
    parts, last_left, row = [], -100.0, -1
    for clip in sorted(clips, key=lambda c: float(c["start"])):
        left, right = pct(float(clip["start"])), pct(float(clip["end"]))
        row = (row + 1) % _LABEL_ROWS if left - last_left < _LABEL_GAP_PCT else 0
        last_left = left
        classes = "marker" + ("" if is_ready(clip) else " failed")
        classes += " end" if left > _RIGHT_ALIGN_PCT else ""
        span = f"{clock(clip['start'])} to {clock(clip['end'])}"
        parts.append(
            f'<a class="{classes}" href="#clip-{clip["rank"]}" '
            f'style="left:{left:.2f}%;width:{max(right - left, 0.0):.2f}%" '
            f'aria-label="Clip #{clip["rank"]}, {span}" title="Clip #{clip["rank"]}: {span}">'
            f'<span class="row{row}">#{clip["rank"]}</span></a>'
        )
    return "".join(parts)


def timeline_html(
    duration: float, timeline: Sequence[Sequence[float]], clips: Sequence[Mapping[str, Any]]
) -> str:
    """Window scores over the video (line) with the clips marked and numbered (each a link to
    its card), plus axes and a legend. `timeline` holds `[start, end, score]` per candidate
    window, in any order."""
    span = max(duration, 1e-6)

    def pct(t: float) -> float:
        return 100.0 * min(max(t / span, 0.0), 1.0)

    # Windows overlap; their midpoints in time order draw the score as one line. The SVG is
    # 1000 x 100 units: x in tenths of a percent, y = 100 - score.
    points = sorted(((s + e) / 2, score) for s, e, score in timeline)
    coords = " ".join(
        f"{10 * pct(t):.1f},{100 - min(max(score, 0.0), 100.0):.1f}" for t, score in points
    )
    line = (
        f'<polyline class="score" points="{coords}" vector-effect="non-scaling-stroke"/>'
        if points
        else ""
    )
    grid = "".join(
        f'<line class="grid" x1="0" y1="{y}" x2="1000" y2="{y}" vector-effect="non-scaling-stroke"/>'
        for y in (0, 50, 100)
    )
    label = f"Highlight score over the {clock(duration)} video, with {len(clips)} clips marked"
    yaxis = "".join(f'<span style="top:{100 - s}%">{s}</span>' for s in (100, 50, 0))
    return (
        f'<div id="timeline" class="tl" role="group" aria-label="{html.escape(label)}">'
        f"{_legend()}"
        f'<div class="tl-body"><div class="yaxis" aria-hidden="true">{yaxis}</div>'
        '<div class="plot"><svg viewBox="0 0 1000 100" preserveAspectRatio="none" '
        f'aria-hidden="true" focusable="false">{grid}{line}</svg>'
        f"{_markers(clips, pct)}</div>{_ticks(duration, pct)}</div></div>"
    )
