"""The report's transcript: one line per segment, split where the speaker changes, with a
"Speaker N:" label at each turn.

Words carry the speaker id of `models.speakers` (0, 1, ... in order of first appearance); ASR
segments can hold two speakers' words, so a segment is cut into runs of one speaker each. The
label's colour is the speaker's caption colour (`SPEAKER_COLOURS`), shown as a bar beside dark
text so it stays readable on white. Transcripts without speaker ids show plain segments.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.caption_formats import SPEAKER_COLOURS
from pipelines.local.report_svg import clock

esc = html.escape


@dataclass(frozen=True)
class Line:
    """One transcript line: a segment, or the part of one that a single speaker says."""

    start: float
    end: float
    text: str
    speaker: int | None


def _speaker(word: Mapping[str, Any]) -> int | None:
    value = word.get("speaker")
    return None if value is None else int(value)


def _runs(segment: Mapping[str, Any]) -> list[Line]:
    words: Sequence[Mapping[str, Any]] = segment.get("words") or []
    runs: list[list[Mapping[str, Any]]] = []
    for word in words:
        # A word without an id stays with the run before it: it does not start a turn.
        if runs and _speaker(word) in (None, _speaker(runs[-1][0])):
            runs[-1].append(word)
        else:
            runs.append([word])
    if len(runs) <= 1:
        who = _speaker(runs[0][0]) if runs else None
        text = str(segment["text"]).strip()
        return [Line(float(segment["start"]), float(segment["end"]), text, who)]
    return [
        Line(
            float(run[0]["start"]),
            float(run[-1]["end"]),
            " ".join(str(w["text"]).strip() for w in run),
            _speaker(run[0]),
        )
        for run in runs
    ]


def transcript_lines(segments: Sequence[Mapping[str, Any]]) -> list[Line]:
    """The transcript's lines in time order, empty ones dropped."""
    return [line for s in segments for line in _runs(s) if line.text]


def speaker_colour(speaker: int) -> str:
    """Speaker `speaker`'s caption colour as CSS `#rrggbb` (the ASS colour is `&HAABBGGRR`)."""
    ass = SPEAKER_COLOURS[speaker % len(SPEAKER_COLOURS)]
    blue, green, red = ass[4:6], ass[6:8], ass[8:10]
    return f"#{red}{green}{blue}".lower()


def transcript_html(segments: Sequence[Mapping[str, Any]], *, seek: bool) -> str:
    """The transcript markup: seek buttons (`seek`: there is a source preview) or paragraphs."""
    parts, previous = [], None
    for line in transcript_lines(segments):
        turn = line.speaker is not None and line.speaker != previous
        previous = line.speaker if line.speaker is not None else previous
        label = (
            f'<span class="spk" style="--spk:{speaker_colour(line.speaker)}">'
            f"Speaker {line.speaker + 1}:</span> "
            if turn and line.speaker is not None
            else ""
        )
        # the spaces keep time, name and words apart in copied text and for screen readers
        body = f'<span class="t">{clock(line.start)}</span> {label}{esc(line.text)}'
        classes = "seg turn" if turn else "seg"
        if seek:
            parts.append(
                f'<button type="button" class="{classes}" data-start="{line.start:.3f}" '
                f'data-end="{line.end:.3f}">{body}</button>'
            )
        else:
            parts.append(f'<p class="{"turn" if turn else "line"}">{body}</p>')
    return "".join(parts)
