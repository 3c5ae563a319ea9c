"""Titles and hooks stand alone: cut where a phrase or word ends (never with an ellipsis), no
leading conjunction or filler, never one word, and "Mr." / "Dr." never end a sentence."""

from __future__ import annotations

from functools import lru_cache

import pytest

from models.caption_titles import (
    MIN_WORDS,
    ClipTitle,
    ExtractiveTitler,
    sentences_of,
    shorten,
    stands_alone,
    tidy,
)
from models.types import Word
from tests.models._fixtures import encoder

_LONG = "A good tool is simple to learn, quick to start, and hard to misuse in every way"
_CONJUNCTIONS = {"and", "but", "so", "or", "because"}


@lru_cache(maxsize=1)
def titler() -> ExtractiveTitler:
    return ExtractiveTitler(encoder())


def _words(text: str, start: float = 0.0) -> list[Word]:
    return [Word(start + 0.4 * i, start + 0.4 * i + 0.3, t) for i, t in enumerate(text.split())]


def assert_stands_alone(line: str) -> None:
    """The rule every title and hook in any test output must meet."""
    words = line.split()
    assert len(words) >= MIN_WORDS, line
    assert words[0].strip(",.").lower() not in _CONJUNCTIONS, line
    assert not line.endswith(("\u2026", "...")), line
    assert stands_alone(line), line


def test_text_that_fits_is_left_whole() -> None:
    assert shorten("Small tools that do one thing well", 60) == "Small tools that do one thing well"
    assert tidy("So, what makes a tool good?", 60, keep_question=True) == "What makes a tool good?"


def test_a_clause_boundary_is_preferred() -> None:
    assert shorten(_LONG, 60) == "A good tool is simple to learn, quick to start"
    assert shorten(_LONG, 40) == "A good tool is simple to learn"
    assert shorten("We shipped it - and then everything broke at once", 24) == "We shipped it"


def test_a_clause_that_would_leave_too_little_is_skipped_for_a_word_cut() -> None:
    # "Well" (after a comma) is under half the limit, so the cut falls between words instead.
    text = "Well, we will look at three examples and explain what makes each one useful"
    cut = shorten(text, 40)
    assert cut == "Well, we will look at three examples"  # the hanging "and" is dropped
    assert len(cut) <= 40


@pytest.mark.parametrize("limit", [12, 20, 33, 47, 60])
def test_word_cuts_end_on_a_whole_word_never_on_a_function_word_nor_an_ellipsis(
    limit: int,
) -> None:
    text = "We will look at three examples and explain what makes each of them useful to the team"
    cut = shorten(text, limit)
    assert len(cut) <= limit and not cut.endswith("\u2026")
    words = cut.split()
    assert words == text.split()[: len(words)]  # whole words, in order
    assert words[-1].lower() not in {"the", "of", "to", "at", "and", "each"} or len(words) == 1


def test_no_cut_leaves_the_phrase_hanging_on_an_article_or_preposition() -> None:
    assert shorten("The biggest mistake people make with the new tools", 33) == (
        "The biggest mistake people make"
    )


def test_a_single_overlong_word_is_cut_inside_it() -> None:
    assert shorten("x" * 80, 20) == "x" * 20


def test_tidy_drops_fillers_and_conjunctions_and_capitalises_before_shortening() -> None:
    assert tidy("um so here is the thing about small tools, they compose.", 30) == (
        "Here is the thing about small"
    )
    assert tidy("Because it works every single time.", 60) == "It works every single time"
    assert tidy("Oh, hello.", 60) == "Hello"
    assert not stands_alone(tidy("Oh, hello.", 60))  # one word: never a title


def test_mr_and_dr_never_split_a_sentence() -> None:
    text = "Mr. Smith met Dr. Jones at noon. They talked for hours about the new clinic."
    assert sentences_of(_words(text)) == [
        "Mr. Smith met Dr. Jones at noon.",
        "They talked for hours about the new clinic.",
    ]
    [result] = titler().titles([_words(text)])
    for line in (result.title, result.hook):
        assert_stands_alone(line)
        assert line.split()[-1] not in {"Mr", "Dr", "Mr.", "Dr."}


_CLIPS = [
    # Each opens with a conjunction or filler, has a one-word line, or runs past the limit.
    "And so we tried again. Yes. But the second time we measured everything before we started, "
    "and the numbers told us where the time went.",
    "Oh, hello. Hello? Because nobody told us the server was down, we lost a whole day of work.",
    "Okay. So. Have also installed a set of sample sounds and configuration files that should "
    "help you to get started with the whole system today.",
    "Dr. Patel said one thing. Mr. Lee wrote it down.",
    "Yes.",
]


@pytest.mark.parametrize("text", _CLIPS)
def test_every_title_and_hook_stands_alone(text: str) -> None:
    [result] = titler().titles([_words(text)])
    assert isinstance(result, ClipTitle) and result.method == "extractive"
    if len(text.split()) < MIN_WORDS:  # a one-word clip cannot have a three-word title
        assert result.title == "Yes"
        return
    assert_stands_alone(result.title)
    assert_stands_alone(result.hook)
    assert len(result.title) <= titler().options.max_title_chars
