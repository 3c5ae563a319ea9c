"""Scoring speaker turns against a fixture's truth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import permutations
from typing import Any

from clipforge.types import Transcript


def accuracy(transcript: Transcript, utterances: Sequence[Mapping[str, Any]]) -> float:
    """Share of words whose speaker matches the truth utterance holding the word's midpoint
    (the nearest one for a midpoint in a pause), under the best mapping of labels."""

    def truth(mid: float) -> int:
        best = min(
            utterances, key=lambda u: max(float(u["start"]) - mid, 0.0, mid - float(u["end"]))
        )
        return int(best["speaker"])

    pairs = [(truth((w.start + w.end) / 2), w.speaker) for w in transcript.words]
    assert all(p is not None for _, p in pairs)
    labels = sorted({int(p) for _, p in pairs if p is not None} | {0, 1})
    return max(
        sum(perm[labels.index(int(p))] == t for t, p in pairs if p is not None) / len(pairs)
        for perm in permutations(range(len(labels)))
    )
