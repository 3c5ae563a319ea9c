"""Caption file formats: SRT and WebVTT writers and parsers (`pysubs2` reads), and an ASS writer
with karaoke.

ASS (Advanced SubStation Alpha) is what ffmpeg's `subtitles` filter burns in with styling, so
burned captions use it: word-by-word highlighting through `\\k` tags (each word switches from
the secondary to the primary colour when it is spoken) and a few named styles, laid out for the
clip's play resolution (9:16, 1:1, 16:9). SRT and VTT are the sidecar formats players load.

Short-form: the `shorts` style (what `auto` means for 9:16, 4:5 and 1:1) shows short-form cues
(`models.caption.SHORT_FORM`: 1-4 words) in a large bold font sized to the frame height (6.5%
of it: capital letters stand over 4% of the height), and highlights the word being spoken: one event per word, the same text
with that word in the highlight colour, so the layout never moves. `subtitle` is plain broadcast
subtitles (two lines, no highlighting).

Placement: `to_ass(..., avoid=...)` takes vertical spans of the frame (shares of its height: the
faces the reframing tracks, `pipelines.render.reframe.ReframePlan.face_spans`) and moves the caption
block to the nearest position in the lower band, else the upper band, that stays clear of them.

Colour by speaker: the `speakers` style (or `to_ass(..., speaker_colours=True)` with any style)
shows each speaker's words in that speaker's colour (`SPEAKER_COLOURS`, by `Word.speaker`), and
its cues break at every change of speaker (`cue_options`), so each cue is one voice.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pysubs2
from pysubs2.formats.subrip import SubripFormat
from pysubs2.formats.webvtt import WebVTTFormat

from clipforge.errors import ValidationFailed
from clipforge.types import AspectRatio
from models.caption import SHORT_FORM, Cue, CueOptions

Aspect = AspectRatio
RESOLUTIONS: dict[str, tuple[int, int]] = {
    "9:16": (1080, 1920),
    "4:5": (1080, 1350),
    "1:1": (1080, 1080),
    "16:9": (1920, 1080),
}
#: Aspects whose `auto` caption style is `shorts` (16:9 keeps the two-line `karaoke` look).
SHORT_FORM_ASPECTS = frozenset({"9:16", "4:5", "1:1"})
#: Safe bands of short-form players: their buttons and text cover about the bottom 12% and the
#: top 10% of the frame, so captions stay between.
MIN_BOTTOM_MARGIN = 0.12
MIN_TOP_MARGIN = 0.10
#: Clearance kept between a caption block and a face span (share of the height).
FACE_PAD = 0.02
_LINE_HEIGHT = 1.2  # a line of text takes about 1.2 font sizes (ascent, descent, spacing)


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
        height_ratio: above 0, the font size as a share of the frame height instead (short-form
            text is sized to the tall frame, not its width).
        highlight: when set, the colour of the word being spoken (one event per word).
        karaoke: `\\k` word timing when the cue has word times (`to_ass(karaoke=...)`).
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
    height_ratio: float = 0.0
    highlight: str = ""
    karaoke: bool = True


STYLES: dict[str, AssStyle] = {
    # Short-form: white bold words, the spoken one gold, above the players' bottom controls.
    "shorts": AssStyle(
        "Arial",
        0.0,
        True,
        "&H00FFFFFF",
        "&H00FFFFFF",
        "&H00000000",
        6,
        2,
        0.25,
        height_ratio=0.065,
        highlight="&H0000D7FF",
        karaoke=False,
    ),
    # Broadcast subtitles: two plain lines near the bottom edge.
    "subtitle": AssStyle(
        "Arial",
        0.055,
        False,
        "&H00FFFFFF",
        "&H00FFFFFF",
        "&H00000000",
        2.5,
        1,
        0.06,
        karaoke=False,
    ),
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


def parse_srt(text: str) -> tuple[Cue, ...]:
    """Cues of an SRT file (tags such as `<i>` are dropped). Raises `ValidationFailed`."""
    return _parse(text, "srt")


def parse_vtt(text: str) -> tuple[Cue, ...]:
    """Cues of a WebVTT file; NOTE, STYLE and REGION blocks and cue settings are skipped."""
    if not text.lstrip("\ufeff").startswith("WEBVTT"):
        raise ValidationFailed("not a WebVTT file: missing WEBVTT header")
    return _parse(text, "vtt")


def _parse(text: str, fmt: str) -> tuple[Cue, ...]:
    """`pysubs2` reads the cues. It skips what it cannot read, so three checks refuse such
    files: every `start --> end` line must become a cue (pysubs2 folds a block with a bad
    timestamp into the previous cue's text), SRT text without any such line is not captions,
    and no cue may end before it starts."""
    name = fmt.upper()
    timings = [line.strip() for line in text.splitlines() if "-->" in line]
    if not timings and fmt == "srt" and text.strip():
        raise ValidationFailed(f"{name}: no 'start --> end' line")
    events = pysubs2.SSAFile.from_string(text, format_=fmt).events
    if len(events) < len(timings):
        stamp = (WebVTTFormat if fmt == "vtt" else SubripFormat).TIMESTAMP
        bad = next((t for t in timings if len(stamp.findall(t)) < 2), timings[-1])
        raise ValidationFailed(f"{name}: bad timestamp in {bad!r}")
    cues = []
    for event in events:
        if event.end < event.start:
            raise ValidationFailed(f"{name}: the cue at {event.start} ms ends before it starts")
        lines = event.plaintext.split("\n")
        if fmt == "vtt":  # WebVTT escapes &, < and > as HTML entities; SRT has no escapes
            lines = [html.unescape(line) for line in lines]
        cues.append(Cue(event.start / 1000, event.end / 1000, tuple(lines)))
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


def resolve_style(style: str, aspect: str | tuple[int, int] = "9:16") -> str:
    """The style `auto` stands for: `shorts` for short-form frames (9:16, 4:5, 1:1, or any
    size no wider than tall), `karaoke` for 16:9; other styles are themselves."""
    if style != "auto":
        return style
    if isinstance(aspect, str):
        return "shorts" if aspect in SHORT_FORM_ASPECTS else "karaoke"
    return "shorts" if aspect[0] <= aspect[1] else "karaoke"


def cue_options(
    style: str, base: CueOptions | None = None, *, aspect: str | tuple[int, int] = "9:16"
) -> CueOptions:
    """Cue layout for a caption style: short-form cues for `shorts`, speaker styles break cues
    at speaker changes."""
    style = resolve_style(style, aspect)
    if base is None:
        base = SHORT_FORM if style == "shorts" else CueOptions()
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


def _em_width(line: str) -> float:
    """Rough width of a line in em of a bold sans-serif font (Arial or its DejaVu fallback)."""
    wide, narrow = "MWmw@", "iIljtfr'.,:;!|() "
    return sum(
        0.95 if c in wide else 0.36 if c in narrow else 0.74 if c.isupper() or c.isdigit() else 0.62
        for c in line
    )


def _fit_tag(cue: Cue, size: int, width: int) -> str:
    """An `\\fs` override shrinking a cue whose widest line would not fit in 92% of the width
    at `size` (a long word on its own line); "" when it fits."""
    widest = max((_em_width(line) for line in cue.lines), default=0.0) * size
    if widest <= 0.92 * width:
        return ""
    return f"{{\\fs{int(size * 0.92 * width / widest)}}}"


def _emphasis_events(cue: Cue, style: AssStyle, lead: str) -> list[tuple[float, float, str]]:
    """One (start, end, text) per word: the whole cue with that word in the highlight colour,
    shown from the word's start (the cue's start for the first) until the next word starts.
    `lead` (a size override, or "") starts every event's text."""
    top_words = len(cue.lines[0].split()) if len(cue.lines) > 1 else len(cue.words)
    events = []
    for k, word in enumerate(cue.words):
        begin = cue.start if k == 0 else word.start
        stop = cue.words[k + 1].start if k + 1 < len(cue.words) else cue.end
        if _ms(stop) // 10 <= _ms(begin) // 10:
            continue  # shorter than the centisecond ASS counts in
        parts = [lead]
        for i, other in enumerate(cue.words):
            parts.append("\\N" if i == top_words else (" " if i else ""))
            text = _ass_escape(other.text)
            # \\r resets to the style, so the size override is repeated after it.
            lit = f"{{\\1c{style.highlight}&}}{text}{{\\r}}{lead}"
            parts.append(lit if i == k else text)
        events.append((begin, stop, "".join(parts)))
    return events


def font_size(style: AssStyle, width: int, height: int, longest: int) -> int:
    """Font size in play-resolution pixels: big enough to read, small enough that the longest
    line fits in 92% of the width (about 0.55 em per character for a sans-serif font).
    Height-sized styles keep their size: a cue too wide for it is shrunk alone (`_fit_tag`)."""
    if style.height_ratio:
        return round(height * style.height_ratio)
    wanted = min(width, height) * style.size_ratio
    return round(min(wanted, width * 0.92 / (0.55 * max(longest, 1))))


def place(
    style: AssStyle, height: int, block: float, avoid: Sequence[tuple[float, float]] = ()
) -> tuple[int, int]:
    """ASS (alignment, vertical margin in pixels) of a caption block `block` pixels tall.

    The style's own bottom margin is preferred; where that block would cover a span of `avoid`
    (top, bottom shares of the height, padded by FACE_PAD), the nearest clear position in the
    lower half is taken, then the highest clear one in the upper half; if none is clear, the
    one covering the least of the spans."""
    share = block / height
    spans = [(top - FACE_PAD, bottom + FACE_PAD) for top, bottom in avoid]

    def covered(top: float) -> float:
        return sum(max(0.0, min(top + share, b) - max(top, a)) for a, b in spans)

    preferred = max(MIN_BOTTOM_MARGIN, style.margin_ratio)
    steps = [i / 100 for i in range(0, 51)]
    lower = sorted(
        (1 - m - share for m in steps if m >= MIN_BOTTOM_MARGIN and 1 - m - share >= 0.5),
        key=lambda top: abs(top - (1 - preferred - share)),
    )
    upper = [m for m in steps if m >= MIN_TOP_MARGIN and m + share <= 0.5]
    candidates = [(2, top) for top in lower] + [(8, top) for top in upper]
    if not candidates:
        return 2, round(height * preferred)
    alignment, top = min(candidates, key=lambda c: (covered(c[1]) > 0, covered(c[1])))
    if alignment == 8:
        return 8, round(top * height)
    return 2, round((1 - top - share) * height)


def _ass_header(
    style_name: str, style: AssStyle, width: int, height: int, size: int, placement: tuple[int, int]
) -> str:
    alignment, margin = placement
    bold = -1 if style.bold else 0
    fields = (
        f"{style_name},{style.font},{size},{style.primary},{style.secondary},"
        f"{style.outline_colour},&H00000000,{bold},0,0,0,100,100,0,0,1,"
        f"{style.outline:g},{style.shadow:g},{alignment},{round(width * 0.04)},"
        f"{round(width * 0.04)},{margin},1"
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
    avoid: Sequence[tuple[float, float]] = (),
) -> str:
    """ASS script for burning in. `style` is a key of `STYLES` or `auto` (`resolve_style`);
    `resolution` an aspect name or (width, height). With `karaoke`, cues that carry word times
    get `\\k` highlighting (styles with a `highlight` colour highlight the spoken word
    instead). `speaker_colours` (default: on for `SPEAKER_STYLES`) colours each word by its
    speaker; cues without word times, or words without a speaker, keep the style's colours.
    `avoid`: vertical spans (top, bottom shares of the height) the captions keep out of."""
    style = resolve_style(style, resolution)
    if style not in STYLES:
        raise ValidationFailed(f"unknown caption style {style!r}; choose from {sorted(STYLES)}")
    look = STYLES[style]
    width, height = RESOLUTIONS[resolution] if isinstance(resolution, str) else resolution
    if width <= 0 or height <= 0:
        raise ValidationFailed("play resolution must be positive")
    longest = max((len(line) for c in cues for line in c.lines), default=1)
    size = font_size(look, width, height, longest)
    lines = max((len(c.lines) for c in cues), default=1)
    placement = place(look, height, lines * size * _LINE_HEIGHT + 2 * look.outline, avoid)
    colours = style in SPEAKER_STYLES if speaker_colours is None else speaker_colours
    events: list[tuple[float, float, str]] = []
    for cue in cues:
        if colours and cue.words and any(w.speaker is not None for w in cue.words):
            events.append((cue.start, cue.end, _speaker_text(cue, look, karaoke and look.karaoke)))
        elif look.highlight and karaoke and cue.words:
            events.extend(_emphasis_events(cue, look, _fit_tag(cue, size, width)))
        elif karaoke and look.karaoke and cue.words:
            events.append((cue.start, cue.end, _karaoke_text(cue)))
        else:
            events.append((cue.start, cue.end, "\\N".join(_ass_escape(line) for line in cue.lines)))
    body = "\n".join(
        f"Dialogue: 0,{_ass_time(a)},{_ass_time(b)},{style},,0,0,0,,{text}" for a, b, text in events
    )
    return _ass_header(style, look, width, height, size, placement) + body + ("\n" if body else "")
