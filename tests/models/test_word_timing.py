"""Word boundaries refined against the signal (models.word_timing), on a made-up waveform whose
boundaries are known exactly: faint noise with loud stretches where words are."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from models.types import Word
from models.word_timing import SAMPLE_RATE, refine_words


def _audio(loud: list[tuple[float, float]], seconds: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(7)
    audio = rng.normal(0, 1e-4, round(seconds * SAMPLE_RATE)).astype(np.float32)
    for start, end in loud:
        t = np.arange(round(start * SAMPLE_RATE), round(end * SAMPLE_RATE))
        audio[t] += (0.2 * np.sin(2 * np.pi * 220 * t / SAMPLE_RATE)).astype(np.float32)
    return audio


def test_starts_and_ends_move_to_the_pauses_within_reach() -> None:
    # Three words: the first said at 1.0-1.4 s, the second at 1.6-2.0 s after a pause, the
    # third runs on from it at 2.0-2.5 s with no pause between them.
    audio = _audio([(1.0, 1.4), (1.6, 2.5)])
    offset = 10.0  # the chunk's place in the source
    words = [
        Word(start=offset + 0.8, end=offset + 1.5, text="early"),  # starts in the silence
        Word(start=offset + 1.75, end=offset + 1.95, text="late"),  # starts after the onset
        Word(start=offset + 2.1, end=offset + 2.5, text="joined"),  # no pause at its start
    ]
    out = refine_words(audio, offset, words)
    assert [w.text for w in out] == ["early", "late", "joined"]
    assert abs(out[0].start - (offset + 1.0)) <= 0.011
    assert abs(out[0].end - (offset + 1.4)) <= 0.011
    assert abs(out[1].start - (offset + 1.6)) <= 0.011
    assert out[2].start == words[2].start  # the signal shows no boundary there
    assert abs(out[2].end - (offset + 2.5)) <= 0.011
    assert all(a.end <= b.start for a, b in pairwise(out))


def test_a_start_never_moves_before_the_previous_word_or_past_reach() -> None:
    audio = _audio([(0.5, 1.5)])
    words = [
        Word(start=0.5, end=0.7, text="one"),
        Word(start=0.75, end=1.0, text="two"),  # inside the same loud run: stays after "one"
        Word(start=2.0, end=2.4, text="ghost"),  # nothing loud in its span: left as it is
    ]
    out = refine_words(audio, 0.0, words)
    assert out[1].start >= out[0].end
    assert (out[2].start, out[2].end) == (2.0, 2.4)
    assert refine_words(audio, 0.0, []) == ()
