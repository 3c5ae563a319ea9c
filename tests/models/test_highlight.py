"""Highlight scoring: the planted hook wins, with sub-scores and a reason; reruns are identical;
bad inputs are refused with clear errors."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from clipforge.errors import ConfigError, ValidationFailed
from models.highlight import HighlightResult, HighlightScorer
from models.highlight_config import ScorerConfig
from models.types import Segment, Transcript, Word
from tests.models._fixtures import (
    Frame,
    encoder,
    hook_span,
    hook_transcript,
    synth_audio,
    synth_frames,
)


@lru_cache(maxsize=1)
def scorer() -> HighlightScorer:
    return HighlightScorer(encoder())


@lru_cache(maxsize=1)
def full_result() -> HighlightResult:
    tr = hook_transcript()
    return scorer().score(tr, audio=synth_audio(tr), frames=synth_frames(tr))


def test_timeline_read_in_blocks_scores_as_the_whole_track() -> None:
    """Detect reads a long track in blocks (bounded memory): frame for frame the same features,
    so the same scores, whatever the block size."""
    from models.highlight_audio import audio_timeline, audio_timeline_blocks

    tr = hook_transcript()
    audio = synth_audio(tr)
    whole = audio_timeline(audio, 16_000, 0.3)
    for size in (1000, 16_000 * 7 + 13):
        blocks = (audio[i : i + size] for i in range(0, len(audio), size))
        timeline = audio_timeline_blocks(blocks, 16_000, 0.3)
        assert np.array_equal(timeline.db, whole.db)
        assert np.array_equal(timeline.flatness, whole.flatness)
        assert np.array_equal(timeline.bursts, whole.bursts)
    streamed = scorer().score(tr, timeline=timeline, frames=synth_frames(tr))
    assert [w.score for w in streamed.windows] == [w.score for w in full_result().windows]


def test_planted_hook_ranks_first_from_text_alone() -> None:
    result = scorer().score(hook_transcript())
    best = result.windows[0]
    hook_start, hook_end = hook_span()
    assert best.start == pytest.approx(hook_start)
    assert best.end <= hook_end + 10
    assert set(best.subscores) == {
        "content",
        "hook",
        "payoff",
        "standalone",
        "emotion",
        "question",
        "numbers",
        "speech_rate",
        "flow",
    }
    assert best.subscores["hook"] > 0.8 and best.subscores["question"] == 1.0
    assert best.reason.startswith("strong hook phrasing; opens with a question")
    # The best window without any hook sentence is far behind.
    filler = [w for w in result.windows if w.end < hook_start or w.start > hook_end]
    assert filler and best.score - max(w.score for w in filler) > 25
    assert result.config_version == "highlight-v3"
    assert result.models[-1] == encoder().info


def test_audio_and_frames_add_their_subscores_and_reasons() -> None:
    result = full_result()
    best = result.windows[0]
    assert best.start == pytest.approx(hook_span()[0])
    for name in ("energy", "reactions", "scene_cuts", "motion"):
        assert best.subscores[name] > 0.5, name
    assert "laughter/applause (2 bursts)" in best.reason or "scene cut" in best.reason
    quiet = [w for w in result.windows if w.end < hook_span()[0]]
    assert all(w.subscores["scene_cuts"] == 0 and w.subscores["reactions"] == 0 for w in quiet)


def test_scores_are_deterministic_bounded_and_sentence_aligned() -> None:
    tr = hook_transcript()
    again = scorer().score(tr, audio=synth_audio(tr), frames=synth_frames(tr))
    first = full_result()
    assert [dataclasses.astuple(w) for w in again.windows] == [
        dataclasses.astuple(w) for w in first.windows
    ]
    assert np.array_equal(again.embeddings, first.embeddings)
    starts = {s.start for s in first.sentences}
    ends = {s.end for s in first.sentences}
    for w in first.windows:
        assert 0 <= w.score <= 100
        assert 15 - 1e-6 <= w.end - w.start <= 60 + 1e-6
        assert w.start in starts and w.end in ends
        assert all(0 <= v <= 1 for v in w.subscores.values())
    assert len({w.index for w in first.windows}) == len(first.windows) == len(first.embeddings)


def test_explicit_spans_are_scored_and_zero_length_spans_refused() -> None:
    hook_start, hook_end = hook_span()
    result = scorer().score(hook_transcript(), spans=[(10.0, 40.0), (hook_start, hook_end)])
    assert result.windows[0].start == hook_start
    with pytest.raises(ValidationFailed, match="zero or negative length"):
        scorer().score(hook_transcript(), spans=[(30.0, 30.0)])
    with pytest.raises(ValidationFailed, match="outside"):
        scorer().score(hook_transcript(), spans=[(0.0, 10_000.0)])


def _transcript(words: list[Word], duration: float = 100.0) -> Transcript:
    model = hook_transcript().model
    segment = Segment(
        words[0].start if words else 0, words[-1].end if words else 0, "", tuple(words)
    )
    return Transcript("en", duration, (segment,) if words else (), model)


def test_bad_transcripts_are_refused() -> None:
    with pytest.raises(ValidationFailed, match="no words"):
        scorer().score(_transcript([]))
    swapped = [Word(5.0, 5.5, "late."), Word(1.0, 1.5, "early.")]
    with pytest.raises(ValidationFailed, match="out of order"):
        scorer().score(_transcript(swapped))
    with pytest.raises(ValidationFailed, match="ends before it starts"):
        scorer().score(_transcript([Word(2.0, 1.0, "backwards.")]))


def test_transcript_shorter_than_min_window_gives_no_windows() -> None:
    result = scorer().score(_transcript([Word(0.0, 0.5, "Hi."), Word(1.0, 1.5, "Bye.")], 3.0))
    assert result.windows == () and result.embeddings.shape == (0, 384)


def test_bad_audio_and_frames_are_refused() -> None:
    tr = hook_transcript()
    with pytest.raises(ValidationFailed, match="1-D"):
        scorer().score(tr, audio=np.zeros((2, 16_000), dtype=np.float32))
    with pytest.raises(ValidationFailed, match="NaN"):
        scorer().score(tr, audio=np.full(16_000, np.nan, dtype=np.float32))
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValidationFailed, match="strictly increasing"):
        scorer().score(tr, frames=[Frame(1.0, image), Frame(1.0, image)])
    with pytest.raises(ValidationFailed, match="uint8"):
        scorer().score(tr, frames=[Frame(0.0, image.astype(float)), Frame(1.0, image)])


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_round_trips_through_files(tmp_path: Path, suffix: str) -> None:
    config = ScorerConfig(version="tuned-2", min_window_s=20, weights={"hook": 2.0, "motion": 1.0})
    path = tmp_path / f"scorer{suffix}"
    config.save(path)
    assert ScorerConfig.load(path) == config


def test_bad_configs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="min_window_s"):
        ScorerConfig(min_window_s=60, max_window_s=30)
    with pytest.raises(ValidationError, match="unknown sub-scores"):
        ScorerConfig(weights={"virality": 1.0})
    with pytest.raises(ValidationError):
        ScorerConfig(min_window_s=0)
    path = tmp_path / "bad.json"
    path.write_text('{"max_window_s": "long"}')
    with pytest.raises(ConfigError, match="max_window_s"):
        ScorerConfig.load(path)


def test_weights_change_the_ranking_and_version_is_recorded() -> None:
    config = ScorerConfig(version="motion-only", weights={"motion": 1.0})
    tr = hook_transcript()
    result = HighlightScorer(encoder(), config).score(tr, frames=synth_frames(tr))
    assert result.config_version == "motion-only"
    assert result.windows[0].subscores["motion"] == max(
        w.subscores["motion"] for w in result.windows
    )


def test_identifiers_are_not_concrete_numbers() -> None:
    from models.highlight_text import _TOKEN, _count_numbers

    def count(text: str) -> int:
        return _count_numbers(_TOKEN.findall(text.lower()))

    assert count("We raised 3 million dollars in 2 years, about 40 percent more.") == 5
    assert count("It runs at about 2,500 bits per second on five watts.") == 3
    # Keys, extensions, codes read digit by digit, callsigns and model names.
    assert count("To check voicemail dial extension 8500, or press 1.") == 0
    assert count("If you dial 1 2 3 4 you can ring the console.") == 0
    assert count("Testing one two three four five.") == 0
    assert count("This is W5ABC on a Kenwood TS2000.") == 0
    assert count("One of us had never tried it.") == 0
