"""Language detection and the first batch share one encoder pass (models.asr_encoder), on real
English and French recordings, with the same words as faster-whisper's own detection."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from clipforge.media import decode_audio
from models.asr import AsrConfig, AsrModel
from models.chunking import ChunkOptions
from models.weights import whisper_base_dir
from pipelines.stages.audio import ChunkStream

# Real French speech: a Canadian French voice's telephone prompts (asterisk-core-sounds-fr-wav,
# CC-BY-SA; the English side is speech_short).
_FRENCH = Path("/usr/share/asterisk/sounds/fr_CA_f_June")
_PROMPTS = ("all-circuits-busy-now", "call-forwarding", "agent-loginok", "auth-incorrect")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> AsrConfig:
    folder = whisper_base_dir(tmp_path_factory.mktemp("data"))
    return AsrConfig(model_dir=folder, name="whisper-base", batch_size=2, cpu_threads=1)


def _without_memo(model: AsrModel) -> AsrModel:
    """The model as it was: faster-whisper's own `detect_language`, every window encoded."""
    assert model._memo is not None
    model._model.encode = model._memo._encode
    model._memo = None
    return model


def _french() -> np.ndarray:
    pieces = [decode_audio(_FRENCH / f"{name}.wav") for name in _PROMPTS]
    gap = np.zeros(8000, dtype=np.float32)
    return np.concatenate([x for p in pieces for x in (p, gap)])


def test_first_batch_reuses_the_detection_window(
    base: AsrConfig, test_media: dict[str, Path]
) -> None:
    chunks = list(ChunkStream(test_media["speech_long"], ChunkOptions(max_chunk_s=30)))[:3]
    model = AsrModel(base)
    assert model._memo is not None
    language, _ = model.detect_language(chunks[0].audio)
    results = model.transcribe_chunks(chunks, language=language)
    # Three windows encoded once each: the first by detection, reused by its batch.
    assert (model._memo.rows_encoded, model._memo.rows_reused) == (3, 1)

    plain = _without_memo(AsrModel(base))
    plain_language, _ = plain.detect_language(chunks[0].audio)
    expected = plain.transcribe_chunks(chunks, language=plain_language)
    assert language == plain_language == "en"
    assert [r.words for r in results] == [r.words for r in expected]


def test_real_french_and_english_are_told_apart(
    base: AsrConfig, test_media: dict[str, Path]
) -> None:
    model = AsrModel(replace(base, batch_size=1))
    french = _french()
    english = decode_audio(test_media["speech_short"])
    assert model.detect_language(french)[0] == "fr"
    assert model.detect_language(english)[0] == "en"
    # Windows kept by detection and never batched are dropped after a few (bounded memory).
    for _ in range(6):
        model.detect_language(english)
    assert model._memo is not None and len(model._memo._kept) <= 4
    # The whole path on the French recording: French words, as without the shared pass.
    transcript = model.transcribe_long(french)
    plain = _without_memo(AsrModel(replace(base, batch_size=1))).transcribe_long(french)
    assert transcript.language == plain.language == "fr"
    assert transcript.words and [w.text for w in transcript.words] == [w.text for w in plain.words]
