"""The reason line names only what speaks for a clip: weaknesses are never listed as reasons."""

from __future__ import annotations

from models.highlight_reason import explain

_WEAK = {"hook": 0.1, "payoff": 0.2, "flow": 0.05, "standalone": 0.4, "speech_rate": 0.3}


def test_long_pauses_and_a_dangling_opening_are_not_reasons() -> None:
    row = {"opens_dangling": 1.0, "pause_share": 0.4, "words_per_s": 1.2}
    assert explain(_WEAK, row) == "no strong signals"
    strong = _WEAK | {"payoff": 0.9}
    assert explain(strong, row) == "clear payoff"
    assert explain(strong, {"words_per_s": 1.2}) == "clear payoff"


def test_positive_signals_are_listed_strongest_first_with_their_numbers() -> None:
    # A question opening counts as a strong hook even when the phrasing is not hook-like.
    values = _WEAK | {"hook": 0.4, "speech_rate": 0.7, "scene_cuts": 0.6}
    row = {"opens_question": 1.0, "words_per_s": 3.9, "cuts": 2.0}
    assert explain(values, row) == (
        "strong hook: question; fast speech (3.9 words/s); 2 scene cuts"
    )
