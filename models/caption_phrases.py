"""Short-form caption cues: 1-4 words each, broken at phrase edges.

Short-form viewers (Shorts, Reels, TikTok) read captions a few big words at a time while the
picture moves. A cue is one small phrase: it never runs past a sentence end, and it breaks where
a speaker would pause:

1. Hard edges, always a break: a sentence end (an abbreviation such as "Mr." or "Dr." is not
   one), phrase punctuation (, ; : and dashes), a pause of at least `pause_s` (~250 ms) between
   words, and a change of speaker when asked for.
2. Clause words ("and", "but", "because", "which", "that", "so", ...) start a new cue when the
   cue already holds at least two words: "we built it / because it was fun".
3. A phrase still longer than `max_words` is split into the fewest near-equal cues (5 words ->
   3 + 2, 9 -> 3 + 3 + 3), so no one-word orphan is left at its end.

Times are whatever the words carry; `models.caption.build_cues` turns the groups into cues.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from models.types import Word

_TERMINAL = (".", "!", "?", "…")
_PHRASE_PUNCT = (",", ";", ":", "—", "–", "-")  # noqa: RUF001 - dashes are punctuation here
_CLOSERS = "\"'”’)]»"  # noqa: RUF001 - closing quotes and brackets after the punctuation
#: Words ending in a period that do not end a sentence: titles, common Latin and English
#: abbreviations (lower case, without the final period).
ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "gen",
        "col",
        "capt",
        "lt",
        "sgt",
        "rev",
        "hon",
        "no",
        "fig",
        "approx",
        "inc",
        "ltd",
        "co",
        "corp",
    }
)
#: Words that open a clause: a cue of two or more words breaks before them.
CLAUSE_WORDS = frozenset(
    {
        "and",
        "but",
        "or",
        "because",
        "which",
        "that",
        "so",
        "who",
        "when",
        "while",
        "where",
        "if",
        "then",
        "although",
        "though",
        "unless",
        "until",
        "since",
    }
)


def _bare(text: str) -> str:
    return text.rstrip(_CLOSERS)


def is_abbreviation(text: str) -> bool:
    """ "Mr.", "Dr.", "e.g." or a single initial such as "J.": a period that ends no sentence."""
    bare = _bare(text)
    if not bare.endswith("."):
        return False
    stem = bare[:-1].lower().lstrip("(\"'“‘")  # noqa: RUF001 - opening quotes
    return stem in ABBREVIATIONS or (len(stem) == 1 and stem.isalpha())


def ends_sentence(text: str) -> bool:
    """Whether a word ends its sentence (terminal punctuation that is not an abbreviation's)."""
    return _bare(text).endswith(_TERMINAL) and not is_abbreviation(text)


def ends_phrase(text: str) -> bool:
    """Whether a word ends a phrase: a sentence end or phrase punctuation (, ; : dashes)."""
    return ends_sentence(text) or _bare(text).endswith(_PHRASE_PUNCT)


def _clause_word(text: str) -> bool:
    return text.lower().strip("\"'“‘,.;:!?") in CLAUSE_WORDS  # noqa: RUF001 - quotes


def _hard_phrases(words: Sequence[Word], pause_s: float, speaker_breaks: bool) -> list[list[Word]]:
    phrases: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        if current:
            last = current[-1]
            paused = word.start - last.end >= pause_s
            turn = speaker_breaks and word.speaker != last.speaker
            if ends_phrase(last.text) or paused or turn:
                phrases.append(current)
                current = []
        current.append(word)
    if current:
        phrases.append(current)
    return phrases


def _clauses(phrase: Sequence[Word]) -> list[list[Word]]:
    parts: list[list[Word]] = [[]]
    for word in phrase:
        if len(parts[-1]) >= 2 and _clause_word(word.text):
            parts.append([])
        parts[-1].append(word)
    return parts


def _balanced(part: Sequence[Word], max_words: int) -> list[list[Word]]:
    count = math.ceil(len(part) / max_words)
    base, extra = divmod(len(part), count)
    out: list[list[Word]] = []
    at = 0
    for k in range(count):
        size = base + (1 if k < extra else 0)
        out.append(list(part[at : at + size]))
        at += size
    return out


def phrase_groups(
    words: Sequence[Word],
    *,
    max_words: int = 4,
    pause_s: float = 0.25,
    speaker_breaks: bool = False,
) -> list[list[Word]]:
    """Words grouped into short-form cues of 1..`max_words` words (rules in the module doc)."""
    if max_words < 1:
        raise ValueError("max_words must be >= 1")
    return [
        group
        for phrase in _hard_phrases(words, pause_s, speaker_breaks)
        for part in _clauses(phrase)
        for group in _balanced(part, max_words)
    ]
