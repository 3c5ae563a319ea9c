"""Sentences from a word-timed transcript, and candidate windows aligned to them.

Clips that start and end on sentence boundaries read as complete thoughts, so candidates are
built from whole sentences: every run of consecutive sentences whose span lies within
[min_s, max_s]. ASR segments are not always sentences (Whisper cuts on pauses and its 30 s
window), so segments are further split on terminal punctuation; a transcript without
punctuation falls back to its segments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from clipforge.errors import ValidationFailed
from models.types import Transcript, Word

_TERMINAL = (".", "?", "!", "…")
# Titles and honorifics end in a full stop without ending the sentence ("Mr. Smith", "Dr. Lee").
# "etc." and "No." are left out: both often do end a sentence.
_ABBREVIATIONS_TEXT = (
    "mr. mrs. ms. dr. prof. st. jr. sr. vs. mt. gen. col. capt. sgt. lt. rev. e.g. i.e."
)
_ABBREVIATIONS = frozenset(_ABBREVIATIONS_TEXT.split())
_CLOSERS = "\"')]}\u00bb\u201d\u2019"
# Tolerance for float noise in word times that were rounded by the ASR or a JSON round trip.
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence of the transcript.

    Attributes:
        start: start of its first word.
        end: end of its last word.
        text: its words joined by spaces.
        first_word: index of its first word in `Transcript.words`.
        n_words: number of words.
    """

    start: float
    end: float
    text: str
    first_word: int
    n_words: int


@dataclass(frozen=True, slots=True)
class Window:
    """A candidate clip: the sentences `first..last` (inclusive).

    Attributes:
        start: start time in seconds.
        end: end time in seconds.
        first: index of its first sentence.
        last: index of its last sentence.
    """

    start: float
    end: float
    first: int
    last: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


def validated_words(transcript: Transcript) -> tuple[Word, ...]:
    """The transcript's words, after checking they can be scored and cut.

    Raises `ValidationFailed` for a transcript without words, non-finite or negative times,
    a word that ends before it starts, or words out of time order.
    """
    words = transcript.words
    if not words:
        raise ValidationFailed("transcript has no words; nothing to score")
    previous_start = -math.inf
    for i, word in enumerate(words):
        if not (math.isfinite(word.start) and math.isfinite(word.end)) or word.start < 0:
            raise ValidationFailed(f"word {i} ({word.text!r}) has invalid times")
        if word.end + _EPS < word.start:
            raise ValidationFailed(f"word {i} ({word.text!r}) ends before it starts")
        if word.start + _EPS < previous_start:
            raise ValidationFailed(
                f"words out of order: word {i} ({word.text!r}) starts at {word.start:.3f}s, "
                f"before the previous word at {previous_start:.3f}s"
            )
        previous_start = word.start
    return words


def ends_sentence(text: str) -> bool:
    """Whether `text` ends with terminal punctuation (closing quotes ignored) that is not the
    full stop of an abbreviation such as "Mr." or "Dr."."""
    stripped = text.rstrip(_CLOSERS)
    if not stripped.endswith(_TERMINAL):
        return False
    last = stripped.split()[-1].lower() if stripped.split() else ""
    return last not in _ABBREVIATIONS


def split_sentences(transcript: Transcript, max_s: float) -> tuple[Sentence, ...]:
    """Split the transcript into sentences; any sentence longer than `max_s` is cut into
    pieces of at most `max_s / 2` so that it can still be part of a window."""
    validated_words(transcript)
    groups: list[list[int]] = []
    index = 0
    for segment in transcript.segments:
        current: list[int] = []
        for word in segment.words:
            current.append(index)
            index += 1
            if ends_sentence(word.text):
                groups.append(current)
                current = []
        if current:
            groups.append(current)
    words = transcript.words
    out: list[Sentence] = []
    for group in groups:
        for piece in _pieces(group, words, max_s / 2):
            out.append(
                Sentence(
                    start=words[piece[0]].start,
                    end=max(words[i].end for i in piece),
                    text=" ".join(words[i].text.strip() for i in piece),
                    first_word=piece[0],
                    n_words=len(piece),
                )
            )
    return tuple(out)


def _pieces(group: list[int], words: Sequence[Word], limit_s: float) -> list[list[int]]:
    if words[group[-1]].end - words[group[0]].start <= 2 * limit_s:
        return [group]
    pieces: list[list[int]] = [[]]
    for i in group:
        piece = pieces[-1]
        if piece and words[i].end - words[piece[0]].start > limit_s:
            pieces.append([i])
        else:
            piece.append(i)
    return pieces


def candidate_windows(
    sentences: Sequence[Sentence], min_s: float, max_s: float
) -> tuple[Window, ...]:
    """Every run of consecutive sentences lasting between `min_s` and `max_s` seconds.

    Empty when the transcript is shorter than `min_s`: there is no clip to make.
    """
    if min_s <= 0 or max_s <= min_s:
        raise ValidationFailed("window lengths must satisfy 0 < min_s < max_s")
    out: list[Window] = []
    for i, first in enumerate(sentences):
        for j in range(i, len(sentences)):
            duration = sentences[j].end - first.start
            if duration > max_s + _EPS:
                break
            if duration >= min_s - _EPS:
                out.append(Window(first.start, sentences[j].end, i, j))
    return tuple(out)


def windows_from_spans(
    sentences: Sequence[Sentence], spans: Sequence[tuple[float, float]], duration: float
) -> tuple[Window, ...]:
    """Windows for explicit (start, end) spans, e.g. a clip a user asked to rescore.

    Each span covers the sentences it overlaps. Raises `ValidationFailed` for zero-length or
    reversed spans, spans outside the media, and spans that contain no speech.
    """
    out: list[Window] = []
    for k, (start, end) in enumerate(spans):
        if not (math.isfinite(start) and math.isfinite(end)) or end - start <= _EPS:
            raise ValidationFailed(f"window {k} ({start}, {end}) has zero or negative length")
        if start < -_EPS or end > duration + 1e-3:
            raise ValidationFailed(f"window {k} ({start}, {end}) lies outside 0..{duration:.3f}s")
        inside = [i for i, s in enumerate(sentences) if s.end > start and s.start < end]
        if not inside:
            raise ValidationFailed(f"window {k} ({start}, {end}) contains no speech")
        out.append(Window(start, end, inside[0], inside[-1]))
    return tuple(out)
