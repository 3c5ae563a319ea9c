"""Clip selection: non-overlapping clips within the duration limits, cut between words, best
first, near-duplicates dropped."""

from __future__ import annotations

import itertools
from functools import lru_cache

import pytest

from clipforge.errors import ValidationFailed
from models.highlight import HighlightResult, HighlightScorer
from models.select import Clip, SelectOptions, select_clips
from models.types import Segment, Transcript, Word
from tests.models._fixtures import encoder, hook_span, hook_transcript


@lru_cache(maxsize=1)
def result() -> HighlightResult:
    return HighlightScorer(encoder()).score(hook_transcript())


def _check_word_edges(clip: Clip, words: tuple[Word, ...], pad: float) -> None:
    inside = [w for w in words if clip.start <= w.start and w.end <= clip.end]
    assert tuple(inside) == clip.words
    for w in words:  # no word is cut by a clip edge
        assert not (w.start < clip.start < w.end) and not (w.start < clip.end < w.end)
    assert 0 <= clip.words[0].start - clip.start <= pad + 1e-9
    assert 0 <= clip.end - clip.words[-1].end <= pad + 1e-9


def test_clips_are_non_overlapping_within_limits_and_cut_between_words() -> None:
    transcript = hook_transcript()
    options = SelectOptions(top_k=4)
    clips = select_clips(result(), transcript, options)
    assert len(clips) == 4
    assert [c.rank for c in clips] == [1, 2, 3, 4]
    assert [c.score for c in clips] == sorted((c.score for c in clips), reverse=True)
    ordered = sorted(clips, key=lambda c: c.start)
    for a, b in itertools.pairwise(ordered):
        assert a.end + options.min_gap_s <= b.start
    for clip in clips:
        assert options.min_duration_s <= clip.duration <= options.max_duration_s
        _check_word_edges(clip, transcript.words, options.pad_s)
        assert clip.scorer_version == "highlight-v3" and clip.models == result().models
        assert clip.reason and clip.subscores


def test_best_clip_is_the_planted_hook() -> None:
    best = select_clips(result(), hook_transcript())[0]
    hook_start, hook_end = hook_span()
    assert best.words[0].start == pytest.approx(hook_start)
    assert best.words[0].text == "What" and best.words[-1].end <= hook_end + 10
    assert best.reason.startswith("strong hook")


def test_duration_limits_are_respected() -> None:
    options = SelectOptions(top_k=6, min_duration_s=20, max_duration_s=30)
    clips = select_clips(result(), hook_transcript(), options)
    assert clips
    for clip in clips:
        assert 20 <= clip.duration <= 30
        _check_word_edges(clip, hook_transcript().words, options.pad_s)


def test_edges_move_to_silences_when_a_window_starts_mid_phrase() -> None:
    # Words 0.05 s apart except one 0.8 s pause after word 3: a window starting at word 5 is
    # moved back to the silence before word 4 (within search_words=2).
    words = []
    t = 0.0
    for i in range(80):
        words.append(Word(t, t + 0.3, f"w{i}" + ("." if i == 3 else "")))
        t += 0.35 + (0.8 if i == 3 else 0.0)
    transcript = Transcript(
        "en", t + 1, (Segment(0, t, "", tuple(words)),), hook_transcript().model
    )
    scored = HighlightScorer(encoder()).score(transcript, spans=[(words[5].start, words[60].end)])
    clip = select_clips(scored, transcript, SelectOptions(min_duration_s=5))[0]
    assert clip.words[0] == words[4]


def test_near_duplicates_are_dropped() -> None:
    base = hook_transcript()
    # The same talk twice in a row: the second copy of the hook says the same thing.
    shift = base.duration
    copy = tuple(
        Segment(
            s.start + shift,
            s.end + shift,
            s.text,
            tuple(Word(w.start + shift, w.end + shift, w.text) for w in s.words),
        )
        for s in base.segments
    )
    doubled = Transcript("en", 2 * shift, base.segments + copy, base.model)
    scored = HighlightScorer(encoder()).score(doubled)
    top_two = scored.windows[:2]
    assert {round(w.start - shift * (w.start > shift), 3) for w in top_two} == {
        round(hook_span()[0], 3)
    }
    clips = select_clips(scored, doubled, SelectOptions(top_k=3))
    hook_clips = [c for c in clips if c.words[0].text == "What"]
    assert len(hook_clips) == 1


def test_bad_options_and_inputs_are_refused() -> None:
    with pytest.raises(ValidationFailed):
        SelectOptions(top_k=0)
    with pytest.raises(ValidationFailed):
        SelectOptions(min_duration_s=30, max_duration_s=30)
    base = hook_transcript()
    words = list(base.words)
    words[3], words[4] = words[4], words[3]
    broken = Transcript("en", base.duration, (Segment(0, 1, "", tuple(words)),), base.model)
    with pytest.raises(ValidationFailed, match="out of order"):
        select_clips(result(), broken)
    empty = Transcript("en", 10.0, (), base.model)
    with pytest.raises(ValidationFailed, match="no words"):
        select_clips(result(), empty)
