"""Text encoder: unit vectors, input order kept, deterministic, recorded with a ModelInfo."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from clipforge.errors import ConfigError, ValidationFailed
from models.text_encoder import EncoderOptions, TextEncoder
from tests.models._fixtures import encoder


def test_embeddings_are_normalised_and_in_input_order() -> None:
    texts = ["The cat sat on the mat.", "Stock markets fell sharply today.", "A cat is on a rug."]
    emb = encoder().encode(texts)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # Paraphrases land closer than unrelated sentences.
    assert emb[0] @ emb[2] > emb[0] @ emb[1] + 0.2


def test_same_input_gives_identical_vectors_and_duplicates_share_one() -> None:
    texts = ["Here's the secret nobody tells you!", "hello", "Here's the secret nobody tells you!"]
    first = encoder().encode(texts)
    second = encoder().encode(texts)
    assert np.array_equal(first, second)
    assert np.array_equal(first[0], first[2])
    # A different batch composition changes nothing beyond float noise.
    np.testing.assert_allclose(encoder().encode([texts[0]])[0], first[0], atol=1e-5)


def test_blank_texts_give_zero_vectors() -> None:
    emb = encoder().encode(["", "   ", "words"])
    assert not emb[0].any() and not emb[1].any() and emb[2].any()
    assert encoder().encode([]).shape == (0, 384)


def test_info_records_the_weights_hash() -> None:
    enc = encoder()
    weights = enc.model_dir / "model.safetensors"
    assert enc.info.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert enc.info.name == "all-MiniLM-L6-v2"


def test_bad_inputs_and_options() -> None:
    with pytest.raises(ValidationFailed, match="sequence of texts"):
        encoder().encode("a single string")
    with pytest.raises(ValidationFailed):
        EncoderOptions(batch_size=0)
    with pytest.raises(ValidationFailed):
        EncoderOptions(num_threads=0)


def test_folder_without_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.json"):
        TextEncoder(tmp_path)


def test_vectors_match_the_transformers_model_and_no_torch_is_loaded(
    test_media: dict[str, Path],
) -> None:
    """The graph and `tokenizers` against transformers' tokenizer and the torch model, on the
    sentences of the ten-minute fixture's script (and odd texts), in batches with padding; and
    the process that only embeds never imports torch or transformers."""
    import json
    import subprocess
    import sys

    import torch
    from transformers import AutoTokenizer

    from models import text_encoder_onnx

    enc = encoder()
    truth = json.loads(test_media["speech_long"].with_suffix(".json").read_text())
    texts = [str(s["text"]) for s in truth][:40]
    texts += ["", "Ça coûte 12 € — naïve café", "word " * 400]
    hf = AutoTokenizer.from_pretrained(str(enc.model_dir), local_files_only=True)
    module, names = text_encoder_onnx.torch_module(enc.model_dir)
    for begin in range(0, len(texts), 16):
        batch = [t for t in texts[begin : begin + 16] if t.strip()]
        ours = text_encoder_onnx.inputs(enc._tokenizer, batch, names)
        theirs = hf(batch, padding=True, truncation=True, max_length=256, return_tensors="np")
        for name in names:
            assert np.array_equal(ours[name], theirs[name]), name
        with torch.inference_mode():
            expected = module(*(torch.from_numpy(ours[n]) for n in names)).numpy()
        got = enc.encode(batch)
        np.testing.assert_allclose(got, expected, atol=1e-5)

    script = (
        "import sys; from models.text_encoder import load_text_encoder; "
        "load_text_encoder().encode(['a sentence']); "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"]
