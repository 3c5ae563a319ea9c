"""Scoring recognised word starts against a recording's reference word onsets."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clipforge.types import Word

# A recognised word this far from its reference onset is taken for another occurrence.
_REACH_S = 0.5


def _norm(text: str) -> str:
    """Lower case letters only, doubled letters single ("Cancelled." == "canceled")."""
    return re.sub(r"(.)\1", r"\1", re.sub(r"[^a-z]", "", text.lower()))


@dataclass(frozen=True, slots=True)
class StartErrors:
    """Signed start errors (recognised - reference, seconds) of the matched reference words."""

    errors: tuple[float, ...]
    missed: int

    @property
    def within_150ms(self) -> float:
        """Share of matched words that start within 150 ms of the reference."""
        return float(np.mean(np.abs(self.errors) <= 0.15))

    @property
    def median_ms(self) -> float:
        """Median absolute start error in milliseconds."""
        return float(np.median(np.abs(self.errors)) * 1000)

    def summary(self) -> str:
        """One line for the logs and docs."""
        e = np.array(self.errors)
        return (
            f"{len(e)} words matched ({self.missed} not recognised), within 150 ms "
            f"{self.within_150ms:.0%}, median {self.median_ms:.0f} ms, signed median "
            f"{np.median(e) * 1000:+.0f} ms, extremes {e.min():+.2f} / {e.max():+.2f} s"
        )


def start_errors(words: Sequence[Word], onsets: Sequence[Sequence[object]]) -> StartErrors:
    """Match each reference onset `[time, text]` to the nearest recognised word with the same
    text within 0.5 s (words the ASR got wrong are not timing errors) and collect the errors."""
    errors: list[float] = []
    missed = 0
    for when, text in onsets:
        same = [w for w in words if _norm(w.text) == _norm(str(text))]
        best = min(same, key=lambda w: abs(w.start - float(str(when))), default=None)
        if best is None or abs(best.start - float(str(when))) > _REACH_S:
            missed += 1
            continue
        errors.append(best.start - float(str(when)))
    return StartErrors(tuple(errors), missed)


def pooled(parts: Sequence[StartErrors]) -> StartErrors:
    """Errors of several recordings together."""
    return StartErrors(tuple(e for p in parts for e in p.errors), sum(p.missed for p in parts))
