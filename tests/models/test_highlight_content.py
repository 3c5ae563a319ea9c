"""The content sub-score puts quotable statements above procedural speech, sentence by sentence
(with sentences that are in neither prototype set) and window by window."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.highlight_config import ScorerConfig
from models.highlight_content import ContentCues, content_cues, content_features
from models.highlight_windows import Sentence, Window
from tests.models._fixtures import encoder

QUOTABLE = (
    "I used to think speed mattered most, but it turned out that trust was everything.",
    "The worst decision we ever made was hiring people who agreed with us.",
    "Honestly, nobody reads the manual, and that is a lesson for every designer.",
    "My father told me that you only fail when you stop trying, and he was right.",
    "Why do we keep building things that nobody asked for?",
)
PROCEDURAL = (
    "To transfer this call to the front desk, press nine now.",
    "Enter your four digit code and then press the star key.",
    "For billing questions, dial two. For technical support, dial three.",
    "Your call may be recorded for quality and training purposes.",
    "Testing, testing, one two three four.",
)


def _cues_of(texts: tuple[str, ...]) -> ContentCues:
    config = ScorerConfig()
    sentences = [
        Sentence(float(i), i + 0.9, t, i * 20, len(t.split())) for i, t in enumerate(texts)
    ]
    return content_cues(
        sentences,
        encoder().encode(list(texts)),
        encoder().encode(config.quotable_exemplars),
        encoder().encode(config.procedural_exemplars),
    )


@lru_cache(maxsize=1)
def cues() -> ContentCues:
    return _cues_of(QUOTABLE + PROCEDURAL)


def test_no_test_sentence_is_a_prototype() -> None:
    config = ScorerConfig()
    assert not set(QUOTABLE + PROCEDURAL) & set(
        config.quotable_exemplars + config.procedural_exemplars
    )


def test_every_quotable_sentence_beats_every_procedural_one() -> None:
    values = cues().value
    quotable, procedural = values[: len(QUOTABLE)], values[len(QUOTABLE) :]
    assert quotable.min() > procedural.max(), (quotable, procedural)
    assert quotable.mean() > 0.6 and procedural.mean() < 0.2


def test_windows_average_their_sentences_and_keep_their_best_line() -> None:
    c = cues()
    n = len(QUOTABLE)
    sentences = [Sentence(float(i), i + 0.9, "x", i * 20, 10) for i in range(len(c.value))]
    windows = [Window(0, 5, 0, n - 1), Window(5, 10, n, 2 * n - 1), Window(4, 6, n - 1, n)]
    subscores, details = content_features(windows, sentences, c)
    content = subscores["content"]
    assert content[0] > 0.6 > 0.2 > content[1]
    mixed_mean = (c.value[n - 1] + c.value[n]) / 2
    expected = 0.75 * mixed_mean + 0.25 * max(c.value[n - 1], c.value[n])
    assert np.isclose(content[2], expected)
    best = [c.value[:n].max(), c.value[n:].max(), max(c.value[n - 1], c.value[n])]
    assert np.allclose(details["content_best"], best)


# Rhetorical devices, in lines that are not in the real-speech evaluation set, and menus whose
# items repeat each other in the same order (parallel, not reversed) and are never negated.
DEVICES = (
    ("It's not the years in your life that count, it's the life in your years.",),  # both
    ("We don't stop playing because we grow old; we grow old because we stop playing.",),
    ("Don't judge a day by the harvest you reap.", "Judge it by the seeds you never plant."),
)
MENUS = (
    ("Press one to record your unavailable message.", "Press two to record your busy message."),
    (
        "Dial three to send this caller to the torture menus now and forever more.",
        "Dial four to send this caller to a polite don't call menu now and forever more.",
    ),
)


def test_chiasmus_and_antithesis_lift_a_line_and_parallel_menus_show_neither() -> None:
    chiasmus_and_antithesis, chiasmus, antithesis = (_cues_of(t) for t in DEVICES)
    assert chiasmus_and_antithesis.rhetoric.tolist() == [2.0]
    assert chiasmus.rhetoric.tolist() == [1.0]  # "don't" is no plain negation
    assert antithesis.rhetoric.tolist() == [1.0, 1.0]  # across the sentence border
    for lines in DEVICES:
        assert _cues_of(lines).value.min() > 0.75, lines
    for lines in MENUS:
        menu = _cues_of(lines)
        assert menu.rhetoric.tolist() == [0.0, 0.0], lines
        assert menu.value.max() < 0.2, lines
