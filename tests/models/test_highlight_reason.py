"""The reason line names only what speaks for a clip, and only sub-scores that are actually high:
one test per reason (named at its threshold, not just below it), and every reason the real
scorer writes on the planted fixture checked against the window's own sub-scores."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models.clip_finder import strong_first
from models.highlight_reason import (
    NO_SIGNAL,
    PHRASES,
    THRESHOLDS,
    explain,
    has_strong_signal,
    reason_subscores,
)
from models.select import SelectOptions, select_clips
from tests.models._fixtures import hook_transcript
from tests.models.test_highlight import full_result

_WEAK = {"hook": 0.1, "payoff": 0.2, "flow": 0.05, "standalone": 0.4, "speech_rate": 0.3}
_ROW = {"words_per_s": 3.9, "cuts": 2.0, "bursts": 2.0, "numbers": 3.0, "opens_number": 1.0}


def test_long_pauses_and_a_dangling_opening_are_not_reasons() -> None:
    row = {"opens_dangling": 1.0, "pause_share": 0.4, "words_per_s": 1.2}
    assert explain(_WEAK, row) == NO_SIGNAL
    assert not has_strong_signal(_WEAK | {"standalone": 1.0, "flow": 1.0})
    strong = _WEAK | {"payoff": 0.9}
    assert explain(strong, row) == "clear payoff"


def test_a_question_or_number_opening_is_not_called_a_strong_hook_when_the_hook_is_low() -> None:
    # The bug of issue 23: "strong hook: number" beside a Hook sub-score of 0.
    values = _WEAK | {"hook": 0.0, "question": 1.0, "numbers": 0.2}
    line = explain(values, _ROW | {"opens_question": 1.0})
    assert line == "opens with a question"
    assert "hook" not in line and "number" not in line


@pytest.mark.parametrize("name", sorted(PHRASES))
def test_each_reason_needs_its_own_subscore_at_its_threshold(name: str) -> None:
    phrase = PHRASES[name](_ROW)
    at = {name: THRESHOLDS[name]}
    below = {name: THRESHOLDS[name] - 0.01}
    assert explain(at, _ROW) == phrase
    assert explain(below, _ROW) == NO_SIGNAL
    # High raw details alone never produce the phrase.
    assert phrase not in explain({n: 0.0 for n in PHRASES}, _ROW)


def test_motion_needs_more_than_the_other_reasons() -> None:
    assert THRESHOLDS["motion"] > THRESHOLDS["energy"]
    assert explain({"motion": 0.6}, _ROW) == NO_SIGNAL  # a talking head's block noise


def test_the_line_names_the_best_of_each_source_first() -> None:
    values = {"content": 0.9, "hook": 0.95, "question": 1.0, "payoff": 0.9, "scene_cuts": 0.6}
    assert reason_subscores(values) == ["question", "hook", "content", "scene_cuts"]


def test_every_reason_on_the_planted_fixture_has_its_subscore_above_threshold() -> None:
    result = full_result()
    named = 0
    for window in result.windows:
        names = reason_subscores(window.subscores)
        phrases = window.reason.split("; ")
        if not names:
            assert window.reason == NO_SIGNAL
            continue
        assert len(phrases) == len(names)
        for name in names:
            assert window.subscores[name] >= THRESHOLDS[name], (name, window)
            named += 1
    assert named > len(result.windows)  # most windows have at least one real reason


def test_a_clip_without_a_strong_signal_only_fills_the_top_k_and_says_so() -> None:
    transcript = hook_transcript()
    clips = select_clips(full_result(), transcript, SelectOptions(top_k=3))
    assert len(clips) == 3 and all(has_strong_signal(c.subscores) for c in clips[:1])
    # Make the best clip weak: it must drop behind the strong ones and say why it is there.
    weak_first = [replace(clips[0], subscores={n: 0.1 for n in clips[0].subscores}), *clips[1:]]
    ordered = strong_first(weak_first, top_k=3)
    assert [c.rank for c in ordered] == [1, 2, 3]
    assert ordered[-1].start == clips[0].start
    strong = sum(has_strong_signal(c.subscores) for c in weak_first)
    assert ordered[-1].reason == (
        f"{NO_SIGNAL}: kept only because {strong} of the top 3 clips stand out; "
        "not exported automatically"
    )
    assert all(c.reason != ordered[-1].reason for c in ordered[:strong])
