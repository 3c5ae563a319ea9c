"""Clip selection: the top-K non-overlapping, non-duplicate windows, cut cleanly between words.

Windows are taken greedily in score order. Each one's edges are moved to word boundaries that
sit next to a silence (a gap between words) when one is within a couple of words, then padded
into that silence, so a clip never starts or ends inside a word and rarely mid-phrase. A window
is skipped when, after snapping, it cannot meet the duration limits, overlaps a chosen clip, or
says nearly the same thing as one (text-embedding cosine similarity).

Speaker turns break ties: among windows of equal score, those whose edges fall on a change of
speaker (`Word.speaker`) go first, and an edge that could move to several equally long silences
(within `turn_tie_s`) takes one at a change of speaker, so a clip starts and ends with a voice
rather than in the middle of an exchange. Without speaker ids nothing changes.

Clean ends (`models.clean_ends`): where the transcript has sentence punctuation, a clip starts on
a sentence start and ends on a sentence end. A window whose last sentence goes on past its end is
extended to that sentence's end when the clip stays within `max_duration_s`, and otherwise ends at
the previous sentence end. Windows that cannot be placed so are taken only when no window can (a
clip cut mid-sentence beats no clip). With the audio track, an edge then moves into the pause
after the last word (before the first), measured in dBFS, instead of a fixed padding.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clipforge.errors import ValidationFailed
from models.clean_ends import quiet_after, quiet_before, sentence_edges
from models.highlight import HighlightResult, ScoredWindow
from models.highlight_windows import ends_sentence, validated_words
from models.types import ModelInfo, Transcript, Word


@dataclass(frozen=True, slots=True)
class SelectOptions:
    """How clips are chosen.

    Attributes:
        top_k: at most this many clips.
        min_duration_s: shortest clip.
        max_duration_s: longest clip.
        min_gap_s: chosen clips are at least this far apart.
        silence_s: a gap between words at least this long is a silence worth cutting in.
        pad_s: at most this much silence is kept before the first and after the last word.
        search_words: how many words an edge may move to reach a silence.
        duplicate_similarity: windows whose text embedding is at least this similar to a
            chosen clip's are dropped.
        duplicate_overlap: windows sharing at least this share of the shorter text's words with
            a chosen clip are dropped (catches the same passage with a sentence more or less).
        turn_tie_s: silences within this many seconds of the best one count as equally good
            edges, and among them an edge at a change of speaker wins.
        quiet_search_s: with audio, how far past the last word's end (before the first word's
            start) a pause is looked for.
        min_trimmed_s: a clip may drop procedural sentences (a menu item, a prompt) from its
            edges, and so end up shorter than `min_duration_s`, down to this length (or
            `min_duration_s`, if shorter): a short line between two prompts is better cut alone
            than with a prompt around it.
    """

    top_k: int = 5
    min_duration_s: float = 15.0
    max_duration_s: float = 60.0
    min_gap_s: float = 0.5
    silence_s: float = 0.3
    pad_s: float = 0.2
    search_words: int = 2
    duplicate_similarity: float = 0.92
    duplicate_overlap: float = 0.8
    turn_tie_s: float = 0.05
    quiet_search_s: float = 0.5
    min_trimmed_s: float = 8.0

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValidationFailed("top_k must be >= 1")
        if not 0 < self.min_duration_s < self.max_duration_s:
            raise ValidationFailed("durations must satisfy 0 < min_duration_s < max_duration_s")
        if self.min_trimmed_s <= 0:
            raise ValidationFailed("min_trimmed_s must be > 0")
        lows = (self.min_gap_s, self.silence_s, self.pad_s, self.search_words, self.turn_tie_s)
        if min(*lows, self.quiet_search_s) < 0:
            raise ValidationFailed(
                "gaps, padding, search_words, turn_tie_s and quiet_search_s must be >= 0"
            )
        if not (0 < self.duplicate_similarity <= 1 and 0 < self.duplicate_overlap <= 1):
            raise ValidationFailed("duplicate_similarity and duplicate_overlap must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class Clip:
    """A chosen clip.

    Attributes:
        rank: 1 for the best clip.
        start: start in seconds, in the silence before `words[0]` (or at its start).
        end: end in seconds, in the silence after `words[-1]` (or at its end).
        score: the window's highlight score (0..100).
        subscores: the window's named sub-scores.
        reason: the window's one-line reason.
        text: the clip's words joined by spaces.
        words: the words inside the clip, absolute times.
        scorer_version: `ScorerConfig.version` that ranked it.
        models: the models behind the score.
    """

    rank: int
    start: float
    end: float
    score: float
    subscores: Mapping[str, float]
    reason: str
    text: str
    words: tuple[Word, ...]
    scorer_version: str
    models: tuple[ModelInfo, ...]

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


def _gap_before(words: Sequence[Word], i: int) -> float:
    return words[i].start - (words[i - 1].end if i > 0 else 0.0)


def _gap_after(words: Sequence[Word], i: int, duration: float) -> float:
    return (words[i + 1].start if i + 1 < len(words) else duration) - words[i].end


def _snap_edge(
    candidates: range,
    gap: list[float],
    origin: int,
    silence_s: float,
    turn: list[bool] | None = None,
    tie_s: float = 0.0,
) -> int:
    """The candidate with the longest gap; the original edge wins unless it lacks a silence.

    With `turn` (True where the edge is a change of speaker), an edge that is not a turn gives
    way to the nearest turn whose silence is as long within `tie_s` (or longer).
    """
    if gap[origin] >= silence_s:
        best = origin
    else:
        best = max(candidates, key=lambda i: (gap[i], -abs(i - origin)))
        if gap[best] < silence_s:
            return origin
    if turn is None or turn[best]:
        return best
    tied = [i for i in candidates if turn[i] and gap[i] >= max(silence_s, gap[best] - tie_s)]
    return min(tied, key=lambda i: (abs(i - origin), i)) if tied else best


def speaker_turns(words: Sequence[Word]) -> list[bool]:
    """True at word i when a different (known) speaker said word i - 1: a turn starts there."""
    return [
        i > 0
        and w.speaker is not None
        and words[i - 1].speaker is not None
        and w.speaker != words[i - 1].speaker
        for i, w in enumerate(words)
    ]


class _Snapper:
    """Word-edge arithmetic over one transcript's words (validated, in time order)."""

    def __init__(
        self,
        words: Sequence[Word],
        duration: float,
        options: SelectOptions,
        audio: npt.NDArray[np.floating] | None = None,
        sample_rate: int = 16_000,
    ) -> None:
        self.words = words
        self.options = options
        self.audio, self.sample_rate = audio, sample_rate
        self.edges = sentence_edges(words)
        starts, ends = self.edges or ([], [])
        self.sentence_starts = [i for i, start in enumerate(starts) if start]
        self.sentence_ends = [i for i, end in enumerate(ends) if end]
        self.duration = max(duration, words[-1].end)
        self.mids = [(w.start + w.end) / 2 for w in words]
        self.before = [_gap_before(words, i) for i in range(len(words))]
        self.after = [_gap_after(words, i, self.duration) for i in range(len(words))]
        starts = speaker_turns(words)
        self.turn_before: list[bool] | None = starts if any(starts) else None
        self.turn_after = [*starts[1:], False] if any(starts) else None

    def turn_edges(self, start: float, end: float) -> int:
        """How many edges (0-2) of the span's words sit at a change of speaker."""
        span = self.word_range(start, end)
        if span is None or self.turn_before is None or self.turn_after is None:
            return 0
        return int(self.turn_before[span[0]]) + int(self.turn_after[span[1]])

    def word_range(self, start: float, end: float) -> tuple[int, int] | None:
        """Indices of the first and last word whose middle lies in [start, end]."""
        a = bisect.bisect_left(self.mids, start)
        b = bisect.bisect_right(self.mids, end) - 1
        return (a, b) if a <= b else None

    def snap(self, a: int, b: int) -> tuple[int, int]:
        """Move edges (at most `search_words` words) to the nearest silences."""
        k, n, opts = self.options.search_words, len(self.words), self.options
        a = _snap_edge(
            range(max(0, a - k), min(b, a + k) + 1),
            self.before,
            a,
            opts.silence_s,
            self.turn_before,
            opts.turn_tie_s,
        )
        b = _snap_edge(
            range(max(a, b - k), min(n - 1, b + k) + 1),
            self.after,
            b,
            opts.silence_s,
            self.turn_after,
            opts.turn_tie_s,
        )
        return a, b

    def bounds(self, a: int, b: int) -> tuple[float, float]:
        """Clip times for words a..b, padded into the surrounding silence (half of it at most,
        so the neighbouring clip can pad too); with audio, inside the pauses it measures."""
        start, end = self._padded(a, b)
        if self.audio is None:
            return start, end
        pad = self.options.pad_s
        search, sr = self.options.quiet_search_s, self.sample_rate
        previous = self.words[a - 1].end if a > 0 else 0.0
        quiet_start = quiet_before(
            self.audio, sr, self.words[a].start, previous, search_s=search, keep_s=pad
        )
        following = self.words[b + 1].start if b + 1 < len(self.words) else self.duration
        # The pause may not take a clip past the longest allowed.
        first = quiet_start if quiet_start is not None else start
        limit = min(following, first + self.options.max_duration_s)
        quiet_end = quiet_after(
            self.audio, sr, self.words[b].end, limit, search_s=search, keep_s=pad
        )
        return first, quiet_end if quiet_end is not None else end

    def _padded(self, a: int, b: int) -> tuple[float, float]:
        pad = self.options.pad_s
        start = self.words[a].start - min(pad, max(self.before[a], 0.0) / 2)
        end = self.words[b].end + min(pad, max(self.after[b], 0.0) / 2)
        return max(0.0, start), min(self.duration, end)

    def fit_sentences(self, a: int, b: int) -> tuple[int, int] | None:
        """a..b moved to sentence edges within the duration limits, or None.

        The start goes back to its sentence's start and the end on to the end of the sentence
        word b belongs to. When that is too long, the end goes back to an earlier sentence end;
        when too short, on to a later one; failing both, the start goes back a sentence.
        """
        if self.edges is None:
            return None
        starts, ends = self.sentence_starts, self.sentence_ends  # word indices, in order
        lo, hi = self.options.min_duration_s, self.options.max_duration_s
        for s in range(bisect.bisect_right(starts, a) - 1, -1, -1):
            first = starts[s]
            own = bisect.bisect_left(ends, first)  # the end of the sentence `first` starts
            if self._length(first, ends[own]) > hi:
                return None  # earlier starts are only longer
            at_b = bisect.bisect_left(ends, b)  # the end of the sentence word b is in
            # The sentence's own end, else end earlier (never before `first`'s sentence).
            for k in [at_b, *range(at_b - 1, own - 1, -1)]:
                if lo <= self._length(first, ends[k]) <= hi:
                    return first, ends[k]
            for k in range(at_b + 1, len(ends)):  # too short: take in the following sentences
                length = self._length(first, ends[k])
                if length > hi:
                    break
                if length >= lo:
                    return first, ends[k]
        return None

    def fit(self, a: int, b: int) -> tuple[int, int] | None:
        """Shrink or grow a..b to meet the duration limits, preferring sentence ends."""
        lo, hi = self.options.min_duration_s, self.options.max_duration_s
        while b > a and self._length(a, b) > hi:
            ends = [i for i in range(a, b) if ends_sentence(self.words[i].text)]
            fitting = [i for i in ends if lo <= self._length(a, i) <= hi]
            b = fitting[-1] if fitting else b - 1
        while b + 1 < len(self.words) and self._length(a, b) < lo:
            b += 1
        while a > 0 and self._length(a, b) < lo:
            a -= 1
        return (a, b) if lo <= self._length(a, b) <= hi else None

    def _length(self, a: int, b: int) -> float:
        # Padded word edges, not the measured pauses: placing a window tries many edges, and
        # a pause moves an edge by a fraction of a second (never past max_duration_s).
        start, end = self._padded(a, b)
        return end - start


def select_clips(
    result: HighlightResult,
    transcript: Transcript,
    options: SelectOptions | None = None,
    *,
    audio: npt.NDArray[np.floating] | None = None,
    sample_rate: int = 16_000,
) -> tuple[Clip, ...]:
    """Choose up to `top_k` clips from scored windows, best first.

    With `audio` (the video's mono track, float samples), clip edges lie in measured pauses.
    Raises `ValidationFailed` when the transcript's words are empty or out of order.
    """
    opts = options or SelectOptions()
    words = validated_words(transcript)
    snapper = _Snapper(words, transcript.duration, opts, audio, sample_rate)
    chosen: list[tuple[ScoredWindow, int, int]] = []
    spans: list[tuple[float, float]] = []
    # Equal scores: windows whose edges fall on speaker turns first, then the usual time order.
    windows = sorted(
        result.windows,
        key=lambda w: (-w.score, -snapper.turn_edges(w.start, w.end), w.start, w.end),
    )
    # Sentence-clean placements first; cut anywhere only when none can be placed cleanly.
    passes = (True, False) if snapper.edges is not None else (False,)
    for clean in passes:
        for window in windows:
            if len(chosen) == opts.top_k:
                break
            picked = _place(window, snapper, clean=clean)
            if picked is None:
                continue
            floor = min(opts.min_trimmed_s, opts.min_duration_s)
            picked = _trim_procedural(*picked, snapper, result, floor)
            start, end = snapper.bounds(*picked)
            if any(start < e + opts.min_gap_s and s < end + opts.min_gap_s for s, e in spans):
                continue
            if _is_duplicate(result, window, [c[0] for c in chosen], opts):
                continue
            chosen.append((window, *picked))
            spans.append((start, end))
        if chosen:
            break
    return tuple(
        _clip(rank, window, a, b, snapper, result)
        for rank, (window, a, b) in enumerate(chosen, start=1)
    )


def _place(window: ScoredWindow, snapper: _Snapper, *, clean: bool) -> tuple[int, int] | None:
    span = snapper.word_range(window.start, window.end)
    if span is None:
        return None
    if clean:
        return snapper.fit_sentences(*span)
    return snapper.fit(*snapper.snap(*span))


def _trim_procedural(
    a: int, b: int, snapper: _Snapper, result: HighlightResult, min_s: float
) -> tuple[int, int]:
    """Words a..b without the procedural sentences at either edge, as long as `min_s` is left.

    A window is at least `min_duration_s` long, so a short line between two prompts comes with
    a prompt around it ("You can press the pound key... Ask not what your country can do for
    you"). An editor cuts the prompt; so does this, one whole sentence at a time."""
    if not result.procedural:
        return a, b
    inside = [
        (s.first_word, s.first_word + s.n_words - 1)
        for s, cut in zip(result.sentences, result.procedural, strict=True)
        if cut and a <= s.first_word and s.first_word + s.n_words - 1 <= b
    ]
    for first, last in inside:  # leading prompts, in order
        if first != a or last >= b or snapper._length(last + 1, b) < min_s:
            break
        a = last + 1
    for first, last in reversed(inside):  # trailing prompts, from the end
        if last != b or first <= a or snapper._length(a, first - 1) < min_s:
            break
        b = first - 1
    return a, b


def _overlap(a: str, b: str) -> float:
    """Share of the shorter text's words (with repeats) that the other text also has."""
    ca, cb = Counter(a.lower().split()), Counter(b.lower().split())
    shorter = min(sum(ca.values()), sum(cb.values()))
    return sum((ca & cb).values()) / shorter if shorter else 0.0


def _is_duplicate(
    result: HighlightResult, window: ScoredWindow, chosen: list[ScoredWindow], opts: SelectOptions
) -> bool:
    if not chosen:
        return False
    if any(_overlap(window.text, c.text) >= opts.duplicate_overlap for c in chosen):
        return True
    if result.embeddings.shape[0] == 0:
        return False
    mine = result.embeddings[window.index]
    others = result.embeddings[[c.index for c in chosen]]
    return bool(np.max(others @ mine) >= opts.duplicate_similarity)


def _clip(
    rank: int, window: ScoredWindow, a: int, b: int, snapper: _Snapper, result: HighlightResult
) -> Clip:
    start, end = snapper.bounds(a, b)
    words = tuple(snapper.words[a : b + 1])
    return Clip(
        rank=rank,
        start=start,
        end=end,
        score=window.score,
        subscores=window.subscores,
        reason=window.reason,
        text=" ".join(w.text for w in words),
        words=words,
        scorer_version=result.config_version,
        models=result.models,
    )


@dataclass(frozen=True, slots=True)
class SnappedSpan:
    """A span a person chose, cut the way detection cuts its clips.

    Attributes:
        start / end: the clip's times, in the silence before the first and after the last word.
        first / last: indices of its first and last word in the transcript's words.
    """

    start: float
    end: float
    first: int
    last: int


def snap_span(
    transcript: Transcript, start: float, end: float, options: SelectOptions | None = None
) -> SnappedSpan | None:
    """Snap a chosen [start, end] with detection's rules (`_Snapper`): the words whose middle
    lies inside, edges moved to a nearby silence (a speaker turn on ties), padded into it.

    No duration limits: a person may want a clip shorter or longer than detection makes.
    None when no word's middle lies in the span. Raises `ValidationFailed` like `select_clips`.
    """
    opts = options or SelectOptions()
    snapper = _Snapper(validated_words(transcript), transcript.duration, opts)
    span = snapper.word_range(start, end)
    if span is None:
        return None
    first, last = snapper.snap(*span)
    clip_start, clip_end = snapper.bounds(first, last)
    return SnappedSpan(clip_start, clip_end, first, last)
