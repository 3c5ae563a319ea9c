"""The words of a clip as its captions show them: the transcript's words inside the clip's
bounds, with a person's corrections (word index -> text) laid over their text.

One rule for the API (what `GET /v1/clips/{id}/words` lists and a correction may name) and the
export stage (what it renders), so a corrected word is exactly one that gets rendered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from clipforge.types import Word


def span_indices(words: Sequence[Word], start_s: float, end_s: float) -> list[int]:
    """Indices of the words that overlap [start_s, end_s] (the words an export renders)."""
    return [i for i, w in enumerate(words) if w.end > start_s and w.start < end_s]


def clip_words(
    words: Sequence[Word], start_s: float, end_s: float, edits: Mapping[int, str]
) -> list[Word]:
    """The clip's words with corrections applied; timings stay the transcript's."""
    return [
        dataclasses.replace(words[i], text=edits[i]) if i in edits else words[i]
        for i in span_indices(words, start_s, end_s)
    ]
