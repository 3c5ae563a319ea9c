"""Caption file formats: SRT and WebVTT writers and parsers, and an ASS writer with karaoke.

ASS (Advanced SubStation Alpha) is what ffmpeg's `subtitles` filter burns in with styling, so
burned captions use it: word-by-word highlighting through `\\k` tags (each word switches from
the secondary to the primary colour when it is spoken) and a few named styles, laid out for the
clip's play resolution (9:16, 1:1, 16:9). SRT and VTT are the sidecar formats players load.

Colour by speaker: the `speakers` style (or `to_ass(..., speaker_colours=True)` with any style)
shows each speaker's words in that speaker's colour (`SPEAKER_COLOURS`, by `Word.speaker`), and
its cues break at every change of speaker (`cue_options`), so each cue is one voice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from clipforge.errors import ValidationFailed
from clipforge.types import AspectRatio
from models.caption import Cue, CueOptions

Aspect = AspectRatio
RESOLUTIONS: dict[str, tuple[int, int]] = {
    "9:16": (1080, 1920),
    "1:1": (1080, 1080),
    "16:9": (1920, 1080),
}


@dataclass(frozen=True, slots=True)
class AssStyle:
    """A named ASS look.

    Attributes:
        font: font family.
        size_ratio: font size as a share of the frame's shorter side.
        bold: bold text.
        primary: colour of spoken words (ASS `&HAABBGGRR`).
        secondary: colour of words not yet spoken (karaoke).
        outline_colour: outline colour.
        outline: outline width in pixels at the play resolution.
        shadow: shadow depth.
        margin_ratio: bottom margin as a share of the frame height.
    """

    font: str
    size_ratio: float
    bold: bool
    primary: str
    secondary: str
    outline_colour: str
    outline: float
    shadow: float
    margin_ratio: float


STYLES: dict[str, AssStyle] = {
    "bold": AssStyle("Arial", 0.075, True, "&H00FFFFFF", "&H00FFFFFF", "&H00000000", 5, 0, 0.18),
    "minimal": AssStyle(
        "Arial", 0.05, False, "&H00FFFFFF", "&H00C0C0C0", "&H80000000", 1.5, 0, 0.08
    ),
    "karaoke": AssStyle("Arial", 0.07, True, "&H0000D7FF", "&H00FFFFFF", "&H00000000", 4, 1, 0.15),
    # the bold look; words take their speaker's colour (see SPEAKER_COLOURS)
    "speakers": AssStyle("Arial", 0.07, True, "&H00FFFFFF", "&H00FFFFFF", "&H00000000", 4, 1, 0.15),
}
#: Styles that colour words by speaker (and break cues at speaker changes).
SPEAKER_STYLES = frozenset({"speakers"})
#: Speaker k's colour is SPEAKER_COLOURS[k % 8] (ASS `&HAABBGGRR`): gold, sky blue, light
#: green, pink, orange, cyan, lilac, white; bright enough on a dark outline, apart in hue.
SPEAKER_COLOURS = (
    "&H0000D7FF",
    "&H00FFC040",
    "&H0080FF80",
    "&H00C080FF",
    "&H0000A5FF",
    "&H00FFFF80",
    "&H00FF80C0",
    "&H00FFFFFF",
)

_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})$")
_ARROW = re.compile(r"^(\S+)\s+-->\s+(\S+)(?:\s+.*)?$")
_TAG = re.compile(r"<[^>]*>")


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _clock(seconds: float, sep: str) -> str:
    ms = _ms(seconds)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip text: numbered blocks, `HH:MM:SS,mmm` times."""
    blocks = [
        f"{i}\n{_clock(c.start, ',')} --> {_clock(c.end, ',')}\n" + "\n".join(c.lines)
        for i, c in enumerate(cues, start=1)
    ]
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT text: `WEBVTT` header, `HH:MM:SS.mmm` times, `&`/`<`/`>` escaped."""
    blocks = [
        f"{_clock(c.start, '.')} --> {_clock(c.end, '.')}\n"
        + "\n".join(_vtt_escape(line) for line in c.lines)
        for c in cues
    ]
    return "WEBVTT\n\n" + "\n\n".join(blocks) + ("\n" if blocks else "")


def _parse_time(text: str, where: str) -> float:
    match = _TIME.match(text.strip())
    if match is None:
        raise ValidationFailed(f"{where}: bad timestamp {text!r}")
    h, m, s, ms = (int(g) if g else 0 for g in match.groups())
    if m >= 60 or s >= 60:
        raise ValidationFailed(f"{where}: bad timestamp {text!r}")
    return h * 3600 + m * 60 + s + ms / 1000


def _blocks(text: str) -> list[list[str]]:
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            blocks[-1].append(line.rstrip())
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def _parse_cue(block: list[str], where: str, vtt: bool) -> Cue:
    timing = next((i for i, line in enumerate(block) if "-->" in line), None)
    if timing is None or timing > 1:
        raise ValidationFailed(f"{where}: no 'start --> end' line")
    match = _ARROW.match(block[timing].strip())
    if match is None:
        raise ValidationFailed(f"{where}: bad timing line {block[timing]!r}")
    start = _parse_time(match.group(1), where)
    end = _parse_time(match.group(2), where)
    if end < start:
        raise ValidationFailed(f"{where}: cue ends before it starts")
    lines = [_TAG.sub("", line) for line in block[timing + 1 :]]
    if vtt:
        lines = [ln.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for ln in lines]
    return Cue(start, end, tuple(lines))


def parse_srt(text: str) -> tuple[Cue, ...]:
    """Cues of an SRT file (tags such as `<i>` are dropped). Raises `ValidationFailed`."""
    return tuple(_parse_cue(b, f"SRT block {i}", False) for i, b in enumerate(_blocks(text), 1))


def parse_vtt(text: str) -> tuple[Cue, ...]:
    """Cues of a WebVTT file; NOTE, STYLE and REGION blocks and cue settings are skipped."""
    blocks = _blocks(text)
    if not blocks or not blocks[0][0].startswith("WEBVTT"):
        raise ValidationFailed("not a WebVTT file: missing WEBVTT header")
    cues: list[Cue] = []
    header_rest = blocks[0][1:]
    body = ([header_rest] if any("-->" in ln for ln in header_rest) else []) + blocks[1:]
    for i, block in enumerate(body, start=1):
        if block[0].startswith(("NOTE", "STYLE", "REGION")):
            continue
        cues.append(_parse_cue(block, f"VTT block {i}", True))
    return tuple(cues)


def _ass_time(seconds: float) -> str:
    cs = max(0, round(seconds * 100))
    h, rest = divmod(cs, 360_000)
    m, rest = divmod(rest, 6000)
    s, cs = divmod(rest, 100)
    return f"{h}:{m:02d}:{s:02d}.{cs:02d}"


def _ass_escape(text: str) -> str:
    # Braces open override blocks and backslashes start tags in ASS; show look-alikes instead.
    return text.replace("\\", "\u29f5").replace("{", "(").replace("}", ")")


def cue_options(style: str, base: CueOptions | None = None) -> CueOptions:
    """Cue layout for a caption style: speaker styles break cues at speaker changes."""
    base = base or CueOptions()
    return replace(base, speaker_breaks=True) if style in SPEAKER_STYLES else base


def speaker_colour(speaker: int) -> str:
    """The ASS colour of speaker `speaker` (0, 1, ...)."""
    return SPEAKER_COLOURS[speaker % len(SPEAKER_COLOURS)]


def _colour_tag(speaker: int | None, style: AssStyle) -> str:
    """Override both fill colours (spoken and not yet spoken), so the whole word shows in its
    speaker's colour; an unknown speaker gets the style's own colours back."""
    if speaker is None:
        return f"{{\\1c{style.primary}&\\2c{style.secondary}&}}"
    colour = speaker_colour(speaker)
    return f"{{\\1c{colour}&\\2c{colour}&}}"


def _speaker_text(cue: Cue, style: AssStyle, karaoke: bool) -> str:
    """The cue's text with a colour tag wherever the speaker changes (and at its start)."""
    top_words = len(cue.lines[0].split()) if len(cue.lines) > 1 else len(cue.words)
    parts: list[str] = []
    lead = round((cue.words[0].start - cue.start) * 100)
    if karaoke and lead > 0:
        parts.append(f"{{\\k{lead}}}")
    previous: int | None = -1
    for i, word in enumerate(cue.words):
        parts.append("\\N" if i == top_words else (" " if i else ""))
        if word.speaker != previous:
            parts.append(_colour_tag(word.speaker, style))
            previous = word.speaker
        if karaoke:
            stop = cue.words[i + 1].start if i + 1 < len(cue.words) else cue.end
            parts.append(f"{{\\k{max(1, round((stop - word.start) * 100))}}}")
        parts.append(_ass_escape(word.text))
    return "".join(parts)


def _karaoke_text(cue: Cue) -> str:
    """`{\\kNN}word` per word; a word lasts until the next word starts (the last until the cue
    ends), and any lead-in silence is an empty syllable so highlighting stays in sync."""
    parts: list[str] = []
    lead = round((cue.words[0].start - cue.start) * 100)
    if lead > 0:
        parts.append(f"{{\\k{lead}}}")
    top_words = len(cue.lines[0].split()) if len(cue.lines) > 1 else len(cue.words)
    for i, word in enumerate(cue.words):
        stop = cue.words[i + 1].start if i + 1 < len(cue.words) else cue.end
        sep = "\\N" if i == top_words else (" " if i else "")
        parts.append(
            f"{sep}{{\\k{max(1, round((stop - word.start) * 100))}}}{_ass_escape(word.text)}"
        )
    return "".join(parts)


def _ass_header(style_name: str, style: AssStyle, width: int, height: int, longest: int) -> str:
    # Big enough to read, small enough that the longest line fits in 92% of the width
    # (about 0.55 em per character for a sans-serif font).
    size = round(
        min(min(width, height) * style.size_ratio, width * 0.92 / (0.55 * max(longest, 1)))
    )
    margin = round(height * style.margin_ratio)
    bold = -1 if style.bold else 0
    fields = (
        f"{style_name},{style.font},{size},{style.primary},{style.secondary},"
        f"{style.outline_colour},&H00000000,{bold},0,0,0,100,100,0,0,1,"
        f"{style.outline:g},{style.shadow:g},2,{round(width * 0.04)},{round(width * 0.04)},{margin},1"
    )
    return (
        "[Script Info]\nScriptType: v4.00+\n"
        f"PlayResX: {width}\nPlayResY: {height}\nWrapStyle: 2\nScaledBorderAndShadow: yes\n\n"
        "[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
        "BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
        "BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
        f"Style: {fields}\n\n"
        "[Events]\n"
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
    )


def to_ass(
    cues: Sequence[Cue],
    style: str = "karaoke",
    resolution: Aspect | tuple[int, int] = "9:16",
    karaoke: bool = True,
    speaker_colours: bool | None = None,
) -> str:
    """ASS script for burning in. `style` is a key of `STYLES`; `resolution` an aspect name or
    (width, height). With `karaoke`, cues that carry word times get `\\k` highlighting.
    `speaker_colours` (default: on for `SPEAKER_STYLES`) colours each word by its speaker;
    cues without word times, or words without a speaker, keep the style's colours."""
    if style not in STYLES:
        raise ValidationFailed(f"unknown caption style {style!r}; choose from {sorted(STYLES)}")
    width, height = RESOLUTIONS[resolution] if isinstance(resolution, str) else resolution
    if width <= 0 or height <= 0:
        raise ValidationFailed("play resolution must be positive")
    longest = max((len(line) for c in cues for line in c.lines), default=1)
    colours = style in SPEAKER_STYLES if speaker_colours is None else speaker_colours
    events = []
    for cue in cues:
        if colours and cue.words and any(w.speaker is not None for w in cue.words):
            text = _speaker_text(cue, STYLES[style], karaoke)
        elif karaoke and cue.words:
            text = _karaoke_text(cue)
        else:
            text = "\\N".join(_ass_escape(line) for line in cue.lines)
        events.append(
            f"Dialogue: 0,{_ass_time(cue.start)},{_ass_time(cue.end)},{style},,0,0,0,,{text}"
        )
    body = "\n".join(events)
    return _ass_header(style, STYLES[style], width, height, longest) + body + ("\n" if body else "")
