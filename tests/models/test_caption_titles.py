"""Title and hook shortening: cut where a phrase or word ends, an ellipsis only when cut."""

from __future__ import annotations

import pytest

from models.caption_titles import shorten, tidy

_LONG = "A good tool is simple to learn, quick to start, and hard to misuse in every way"


def test_text_that_fits_is_left_whole_without_an_ellipsis() -> None:
    assert shorten("Small tools that do one thing well", 60) == "Small tools that do one thing well"
    assert tidy("So, what makes a tool good?", 60, keep_question=True) == "What makes a tool good?"


def test_a_clause_boundary_is_preferred_and_needs_no_ellipsis() -> None:
    assert shorten(_LONG, 60) == "A good tool is simple to learn, quick to start"
    assert shorten(_LONG, 40) == "A good tool is simple to learn"
    assert shorten("We shipped it - and then everything broke at once", 24) == "We shipped it"


def test_a_clause_that_would_leave_too_little_is_skipped_for_a_word_cut() -> None:
    # "Well" (after a comma) is under half the limit, so the cut falls between words instead.
    text = "Well, we will look at three examples and explain what makes each one useful"
    cut = shorten(text, 40)
    assert cut == "Well, we will look at three examples…"
    assert len(cut) <= 40


@pytest.mark.parametrize("limit", [12, 20, 33, 47, 60])
def test_word_cuts_end_on_a_whole_word_and_never_on_a_function_word(limit: int) -> None:
    text = "We will look at three examples and explain what makes each of them useful to the team"
    cut = shorten(text, limit)
    assert len(cut) <= limit and cut.endswith("\u2026")
    words = cut.removesuffix("\u2026").split()
    assert words == text.split()[: len(words)]  # whole words, in order
    assert words[-1].lower() not in {"the", "of", "to", "at", "and", "each"} or len(words) == 1


def test_no_cut_leaves_the_phrase_hanging_on_an_article_or_preposition() -> None:
    assert shorten("The biggest mistake people make with the new tools", 30) == (
        "The biggest mistake people…"
    )


def test_a_single_overlong_word_is_cut_inside_it() -> None:
    assert shorten("x" * 80, 20) == "x" * 19 + "\u2026"


def test_tidy_drops_fillers_and_capitalises_before_shortening() -> None:
    assert tidy("um so here is the thing about small tools, they compose.", 30) == (
        "Here is the thing about small\u2026"
    )
