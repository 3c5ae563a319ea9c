"""Caption cues from word timings, for one clip.

Rules (common broadcast/streaming subtitle guidance): at most two lines of 42 characters, each
cue on screen 0.8-6 s, reading speed at most ~17 characters per second where the speech leaves
room (a cue is held into the following silence, never over the next cue), and no cue crossing
the clip's edges. Cues break at sentence ends and pauses first, so each reads as a phrase.
Times are relative to the clip start. Writers and parsers live in `caption_formats`, titles in
`caption_titles`.

Short-form cues (`CueOptions.max_words` > 0, the `shorts` style): 1-4 words per cue, broken at
phrase edges (`caption_phrases`), each cue shown from its first word until the next cue starts
(or briefly past its last word where a long pause follows), so the captions follow the voice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from clipforge.errors import ValidationFailed
from models.caption_phrases import ends_sentence, phrase_groups
from models.types import Word


@dataclass(frozen=True, slots=True)
class CueOptions:
    """Cue layout limits.

    Attributes:
        max_chars_per_line: longest line.
        max_lines: lines per cue.
        min_duration_s: shortest time on screen.
        max_duration_s: longest time on screen.
        max_cps: reading-speed limit in characters per second.
        pause_s: a gap between words this long starts a new cue.
        min_sentence_chars: a sentence end closes the cue once it has this many characters.
        speaker_breaks: a change of speaker (`Word.speaker`) always starts a new cue, and short
            cues are never merged across one, so each cue is one voice (the `speakers` style
            colours cues by speaker; off by default so other styles' cues stay as they were).
        max_words: above 0, short-form cues of 1..max_words words broken at phrase edges
            (`caption_phrases`; `pause_s` is then the pause that breaks a phrase, and the
            reading-speed and minimum-duration rules do not apply: cues follow the voice).
    """

    max_chars_per_line: int = 42
    max_lines: int = 2
    min_duration_s: float = 0.8
    max_duration_s: float = 6.0
    max_cps: float = 17.0
    pause_s: float = 1.0
    min_sentence_chars: int = 12
    speaker_breaks: bool = False
    max_words: int = 0

    def __post_init__(self) -> None:
        if self.max_chars_per_line < 8 or self.max_lines < 1:
            raise ValidationFailed("max_chars_per_line must be >= 8 and max_lines >= 1")
        if not 0 < self.min_duration_s < self.max_duration_s:
            raise ValidationFailed("cue durations must satisfy 0 < min < max")
        if self.max_cps <= 0 or self.pause_s <= 0:
            raise ValidationFailed("max_cps and pause_s must be positive")
        if self.max_words < 0:
            raise ValidationFailed("max_words must be >= 0")


#: Short-form cues (the `shorts` style): up to four words; lines of at most 12 characters, which
#: fit the width of a 9:16 frame at that style's font (6.5% of the height, so capitals stand
#: over 4% of it); a ~250 ms pause is a phrase edge.
SHORT_FORM = CueOptions(max_chars_per_line=12, max_words=4, pause_s=0.25)
#: A short-form cue stays up to this long after its last word when the next one is far off.
SHORT_HOLD_S = 0.5


@dataclass(frozen=True, slots=True)
class Cue:
    """One caption cue.

    Attributes:
        start: seconds from the clip start.
        end: seconds from the clip start.
        lines: the text lines as shown.
        words: the words with times relative to the clip start (empty for parsed files).
    """

    start: float
    end: float
    lines: tuple[str, ...]
    words: tuple[Word, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        """The lines joined by spaces."""
        return " ".join(self.lines)

    @property
    def duration(self) -> float:
        """Seconds on screen."""
        return self.end - self.start


def wrap_lines(tokens: Sequence[str], max_chars: int, max_lines: int = 2) -> tuple[str, ...] | None:
    """Lay words out in at most `max_lines` (1 or 2) lines of `max_chars`; None if they don't fit.

    Two lines are balanced, the top one no longer than needed (a "pyramid" reads faster).
    """
    text = " ".join(tokens)
    if len(text) <= max_chars:
        return (text,)
    if max_lines < 2:
        return None
    best: tuple[int, int] | None = None
    for k in range(1, len(tokens)):
        top, bottom = " ".join(tokens[:k]), " ".join(tokens[k:])
        if len(top) <= max_chars and len(bottom) <= max_chars:
            key = (abs(len(top) - len(bottom)) + (1 if len(top) > len(bottom) else 0), k)
            best = key if best is None or key < best else best
    if best is None:
        return None
    k = best[1]
    return " ".join(tokens[:k]), " ".join(tokens[k:])


def _clip_words(words: Sequence[Word], clip_start: float, clip_end: float) -> list[Word]:
    if not clip_end > clip_start:
        raise ValidationFailed(f"clip end {clip_end} must be after its start {clip_start}")
    length = clip_end - clip_start
    out: list[Word] = []
    for i, w in enumerate(words):
        if w.end < w.start or (i and w.start < words[i - 1].start):
            raise ValidationFailed(
                f"word {i} ({w.text!r}) is out of order or ends before it starts"
            )
        if clip_start <= (w.start + w.end) / 2 <= clip_end and w.text.strip():
            start = min(max(w.start - clip_start, 0.0), length)
            end = min(max(w.end - clip_start, start), length)
            out.append(Word(start, end, w.text.strip(), speaker=w.speaker))
    return out


def _split_long(word: Word, max_chars: int) -> list[Word]:
    # A token longer than a line (a URL, a run-on ASR artefact) is cut into line-sized pieces
    # that share the word's time, so layout never fails.
    if len(word.text) <= max_chars:
        return [word]
    pieces = [word.text[i : i + max_chars] for i in range(0, len(word.text), max_chars)]
    step = (word.end - word.start) / len(pieces)
    return [
        Word(word.start + k * step, word.start + (k + 1) * step, p, word.probability, word.speaker)
        for k, p in enumerate(pieces)
    ]


def _group(words: Sequence[Word], opts: CueOptions) -> list[list[Word]]:
    groups: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        if current:
            tokens = [w.text for w in current] + [word.text]
            fits = wrap_lines(tokens, opts.max_chars_per_line, opts.max_lines) is not None
            too_long = word.end - current[0].start > opts.max_duration_s
            paused = word.start - current[-1].end >= opts.pause_s
            chars = sum(len(w.text) + 1 for w in current)
            sentence_done = ends_sentence(current[-1].text) and chars >= opts.min_sentence_chars
            turn = opts.speaker_breaks and word.speaker != current[-1].speaker
            if not fits or too_long or paused or sentence_done or turn:
                groups.append(current)
                current = []
        current.append(word)
    if current:
        groups.append(current)
    return groups


def _time(groups: Sequence[Sequence[Word]], length: float, opts: CueOptions) -> list[Cue]:
    cues: list[Cue] = []
    for i, group in enumerate(groups):
        start = group[0].start
        limit = groups[i + 1][0].start if i + 1 < len(groups) else length
        chars = len(" ".join(w.text for w in group))
        wanted = max(opts.min_duration_s, chars / opts.max_cps)
        end = min(max(group[-1].end, start + wanted), limit, start + opts.max_duration_s)
        if end - start < opts.min_duration_s:
            # No room after the words: show the cue earlier, in the gap before them.
            floor = cues[-1].end if cues else 0.0
            start = max(floor, end - opts.min_duration_s)
        tokens = [w.text for w in group]
        lines = wrap_lines(tokens, opts.max_chars_per_line, opts.max_lines) or (" ".join(tokens),)
        cues.append(Cue(start, max(end, start), lines, tuple(group)))
    return cues


def _merge_short(groups: list[list[Word]], length: float, opts: CueOptions) -> list[Cue]:
    """Re-time, merging any cue still shorter than the minimum into a neighbour that can take
    it (the merged text must fit and last at most `max_duration_s`)."""
    while True:
        cues = _time(groups, length, opts)
        short = next((i for i, c in enumerate(cues) if c.duration < opts.min_duration_s), None)
        if short is None or len(groups) == 1:
            return cues
        for other in sorted((short - 1, short + 1), key=lambda j: abs(j - short) + (j > short)):
            if not 0 <= other < len(groups):
                continue
            a, b = min(short, other), max(short, other)
            merged = groups[a] + groups[b]
            tokens = [w.text for w in merged]
            one_voice = not opts.speaker_breaks or len({w.speaker for w in merged}) == 1
            if (
                wrap_lines(tokens, opts.max_chars_per_line, opts.max_lines) is not None
                and merged[-1].end - merged[0].start <= opts.max_duration_s
                and one_voice
            ):
                groups[a : b + 1] = [merged]
                break
        else:
            return cues


def build_cues(
    words: Sequence[Word],
    clip_start: float,
    clip_end: float,
    options: CueOptions | None = None,
) -> tuple[Cue, ...]:
    """Cues for the words of one clip (words whose middle lies inside it), times relative to
    `clip_start`. Empty when the clip has no words.

    Raises `ValidationFailed` when the clip has no length or the words are out of order.
    """
    opts = options or CueOptions()
    inside = _clip_words(words, clip_start, clip_end)
    # Short-form lines are short (12 characters), but a longer word keeps a line of its own
    # (the ASS writer shrinks that cue to fit); only run-ons past two lines' worth are cut.
    longest = opts.max_chars_per_line * (2 if opts.max_words else 1)
    pieces = [p for w in inside for p in _split_long(w, longest)]
    if not pieces:
        return ()
    if opts.max_words:
        groups = phrase_groups(
            pieces,
            max_words=opts.max_words,
            pause_s=opts.pause_s,
            speaker_breaks=opts.speaker_breaks,
        )
        return tuple(_time_short(groups, clip_end - clip_start, opts))
    return tuple(_merge_short(_group(pieces, opts), clip_end - clip_start, opts))


def _time_short(groups: Sequence[Sequence[Word]], length: float, opts: CueOptions) -> list[Cue]:
    """Short-form cues: on screen from the first word until the next cue starts, or
    `SHORT_HOLD_S` past the last word where the next one is further off (no empty flashes
    between close phrases, no caption left up through a long pause)."""
    cues: list[Cue] = []
    for i, group in enumerate(groups):
        start, last_end = group[0].start, group[-1].end
        following = groups[i + 1][0].start if i + 1 < len(groups) else length
        end = min(following, last_end + SHORT_HOLD_S, length)
        tokens = [w.text for w in group]
        lines = wrap_lines(tokens, opts.max_chars_per_line, opts.max_lines) or _two_lines(tokens)
        cues.append(Cue(start, max(end, start), lines, tuple(group)))
    return cues


def _two_lines(tokens: Sequence[str]) -> tuple[str, ...]:
    """Words that do not fit two lines of the limit (a long word): the two most even lines."""
    if len(tokens) < 2:
        return (" ".join(tokens),)
    k = min(
        range(1, len(tokens)),
        key=lambda k: max(len(" ".join(tokens[:k])), len(" ".join(tokens[k:]))),
    )
    return " ".join(tokens[:k]), " ".join(tokens[k:])
