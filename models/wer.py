"""Word error rate, computed by `jiwer` on normalised words.

Text is normalised first (lower case, punctuation dropped, apostrophes kept inside words) so
"Welcome to the show." and "welcome to the show" score 0. Numbers are not spelled out: a test
that needs "ten" == "10" must normalise that itself.
"""

from __future__ import annotations

import re

import jiwer

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def normalise(text: str) -> list[str]:
    """Lower-case words of `text` without punctuation."""
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of `hypothesis` against `reference` (0.0 is perfect; may exceed 1.0)."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:  # jiwer refuses an empty reference
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(" ".join(ref), " ".join(hyp)))
