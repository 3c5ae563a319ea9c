"""Speaker turns on real voices (scripts/real_conversations.py): a real two-person telephone
call with turns of 0.4-4 s and an overlap, and splices of real recordings of three and four
people with short turns (the fourth person in French, and in English: `splice_4p_en`); word
starts on the same recordings. Figures are printed for
docs/speech-evaluation.md."""

from __future__ import annotations

from functools import cache

import pytest

from clipforge.media.track import decode_track
from models.asr import AsrConfig, AsrModel
from models.chunking import merge_chunks
from models.speakers import SAMPLE_RATE, SpeakerEncoder
from models.transcription import refined, transcribe_chunks
from models.types import Transcript
from models.weights import prepare_whisper_base
from tests.utils.real_conversations import real_set, truth, utterances
from tests.utils.turns import accuracy
from tests.utils.word_starts import pooled, start_errors

# Per-word accuracy each recording reaches at least (measured with CAM++, tiny.en: 0.959, 0.974,
# 0.883; base: 0.973, 0.962; the bounds are those set with the previous encoder).
_BOUNDS = {"call_2p": 0.85, "splice_3p": 0.9, "splice_4p": 0.85}
# Counts the pipeline's chunk-by-chunk windows find. The four-person splice's fourth voice (June
# Wallack, in French: Whisper tiny.en keeps 4 of her words) is merged into the nearest one;
# with the GE2E encoder used before, embedding the whole recording at once (`diarize`) found four.
_COUNTS = {"call_2p": {2}, "splice_3p": {3}, "splice_4p": {3, 4}}


@cache
def _encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


@cache
def _labelled(model: AsrModel, name: str) -> Transcript:
    """The recording through the pipeline's path (refined word times, speaker ids); decoded
    once per module for the speaker and the word-start tests."""
    audio = decode_track(real_set()[name])
    return transcribe_chunks(
        model, _encoder(), model.split_chunks(audio), duration_s=len(audio) / SAMPLE_RATE
    )


@pytest.mark.parametrize("name", sorted(_BOUNDS))
def test_real_voices_are_counted_and_labelled(asr_model: AsrModel, name: str) -> None:
    labelled = _labelled(asr_model, name)
    wav = real_set()[name]
    score = accuracy(labelled, utterances(wav))
    found = {w.speaker for w in labelled.words}
    print(
        f"\n{name}: {len(labelled.words)} words, {len(found)} speakers found of "
        f"{truth(wav)['speakers']}, word speaker accuracy {score:.1%}"
    )
    assert len(found) in _COUNTS[name] and found == set(range(len(found)))
    assert score >= _BOUNDS[name]


def test_four_people_speaking_english_are_counted_and_labelled(asr_model: AsrModel) -> None:
    """The four-person target on `splice_4p_en` (the French voice replaced by a man reading
    English): met since the CAM++ encoder (with GE2E d-vectors 1-2 of 4 were found, ~25 %)."""
    labelled = _labelled(asr_model, "splice_4p_en")
    wav = real_set()["splice_4p_en"]
    score = accuracy(labelled, utterances(wav))
    found = {w.speaker for w in labelled.words}
    print(
        f"\nsplice_4p_en: {len(labelled.words)} words, {len(found)} speakers found of 4, {score:.1%}"
    )
    assert len(found) == 4 and score >= 0.85


def test_word_starts_against_the_reference_onsets(
    asr_model: AsrModel, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Word starts against the reference onsets (`word_onsets`: hand-labelled in the call, and
    carried into the splices with the call's pieces; the prompts' splice points), over the three
    recordings: Whisper base refined reaches the target, refinement helps it, and tiny.en stays
    where it was measured (its starts are late inside running speech, where refinement finds
    no boundary)."""
    base = AsrModel(
        AsrConfig(model_dir=prepare_whisper_base(tmp_path_factory.mktemp("base")), cpu_threads=1)
    )
    own, moved, tiny = [], [], []
    for name in sorted(_BOUNDS):
        wav = real_set()[name]
        audio = decode_track(wav)
        onsets = truth(wav)["word_onsets"]
        chunks = base.split_chunks(audio)
        results = base.transcribe_chunks(chunks, language="en")
        seconds = len(audio) / SAMPLE_RATE
        own.append(start_errors(merge_chunks(results, duration_s=seconds).words, onsets))
        refined_words = merge_chunks(refined(chunks, results), duration_s=seconds).words
        moved.append(start_errors(refined_words, onsets))
        tiny.append(start_errors(_labelled(asr_model, name).words, onsets))
    before, after, small = pooled(own), pooled(moved), pooled(tiny)
    print(f"\nbase, Whisper's starts: {before.summary()}")
    print(f"base, refined: {after.summary()}")
    print(f"tiny.en, refined: {small.summary()}")
    assert len(after.errors) >= 50 and len(small.errors) >= 50
    assert after.within_150ms >= 0.9 and after.median_ms <= 60
    assert after.within_150ms > before.within_150ms and after.median_ms < before.median_ms
    assert small.within_150ms >= 0.55 and small.median_ms <= 150
