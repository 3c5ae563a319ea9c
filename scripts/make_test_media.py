"""Build ClipForge's test media deterministically into a cache folder.

Speech comes from Debian's espeak-ng (known texts in `tests/fixtures/*.txt`, so tests know the
reference transcript); pictures are ffmpeg test patterns (`testsrc2`) with hard hue cuts as scene
changes. Media are built, never committed: the folder defaults to `<repo>/.cache/test-media/`
(override with `CLIPFORGE_TEST_MEDIA_DIR`) and files already built are kept.

Usage: `python scripts/make_test_media.py [OUT_DIR]`; tests and benchmarks call `build_all()`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable
from pathlib import Path

import imageio_ffmpeg
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"
# Bump when a recipe changes so stale caches are not reused.
BUILD_VERSION = 1
ESPEAK_RATE = 22050  # espeak-ng's native output rate
ESPEAK_WPM = 130
SCENE_S = 7.0  # a hard colour cut every SCENE_S seconds gives scene changes at known times


def default_out_dir() -> Path:
    """The cache folder: `$CLIPFORGE_TEST_MEDIA_DIR` or `<repo>/.cache/test-media`."""
    env = os.environ.get("CLIPFORGE_TEST_MEDIA_DIR")
    return Path(env) if env else REPO_ROOT / ".cache" / "test-media"


def short_text() -> str:
    """Reference text spoken in the ~20 s speech fixture."""
    return (FIXTURES_DIR / "speech_short.txt").read_text(encoding="utf-8").strip()


def long_sentences() -> list[str]:
    """Reference sentences, in order, spoken in the ~10 minute speech fixture."""
    lines = (FIXTURES_DIR / "speech_long.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def _ffmpeg(*args: str) -> None:
    # -nostdin and no stdin: ffmpeg would otherwise read (and eat) the terminal's keystrokes.
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    cmd = [exe, "-nostdin", "-hide_banner", "-v", "error", "-y", *args]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)


def _espeak(text: str) -> np.ndarray:
    """Synthesize text with espeak-ng; int16 mono samples at ESPEAK_RATE."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install -y espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "speech.wav"
        cmd = [exe, "-v", "en-us", "-s", str(ESPEAK_WPM), "-w", str(wav_path), text]
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
        with wave.open(str(wav_path)) as wav:
            if wav.getframerate() != ESPEAK_RATE or wav.getnchannels() != 1:
                raise RuntimeError("unexpected espeak-ng output format")
            return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * ESPEAK_RATE), dtype=np.int16)


def _write_wav(path: Path, samples: np.ndarray) -> float:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(ESPEAK_RATE)
        wav.writeframes(samples.tobytes())
    return len(samples) / ESPEAK_RATE


def _pause_s(index: int) -> float:
    # Deterministic, varied pauses (1.2-2.8 s): real silences for the VAD to cut at.
    return 1.2 + 1.6 * ((index * 7) % 11) / 10


def _speech_track(sentences: list[str], wav_path: Path) -> list[dict[str, float | str]]:
    """Speak sentences one by one with pauses between; returns each sentence's time span."""
    pieces = [_silence(1.0)]
    cues: list[dict[str, float | str]] = []
    t = 1.0
    for i, sentence in enumerate(sentences):
        speech = _espeak(sentence)
        cues.append({"start": t, "end": t + len(speech) / ESPEAK_RATE, "text": sentence})
        pause = _silence(_pause_s(i) if i < len(sentences) - 1 else 1.0)
        pieces += [speech, pause]
        t += (len(speech) + len(pause)) / ESPEAK_RATE
    _write_wav(wav_path, np.concatenate(pieces))
    return cues


def _pattern(width: int, height: int, fps: int, duration: float) -> list[str]:
    hue = f"hue=H=2*PI*floor(t/{SCENE_S})/5"
    src = f"testsrc2=s={width}x{height}:r={fps}:d={duration:.3f}"
    return ["-f", "lavfi", "-i", f"{src},{hue}"]


_X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def _speech_video(out: Path, sentences: list[str], *, fps: int, channels: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        cues = _speech_track(sentences, wav)
        with wave.open(str(wav)) as w:
            duration = w.getnframes() / ESPEAK_RATE
        aac = ["-c:a", "aac", "-b:a", "64k", "-ar", "44100", "-ac", str(channels)]
        _ffmpeg(*_pattern(320, 240, fps, duration), "-i", str(wav), *_X264, *aac, str(out))
    out.with_suffix(".json").write_text(json.dumps(cues, indent=1), encoding="utf-8")


def _build_speech_short(out: Path) -> None:
    sentences = [s.strip() + "." for s in short_text().split(".") if s.strip()]
    _speech_video(out, sentences, fps=25, channels=2)


def _build_speech_long(out: Path) -> None:
    _speech_video(out, long_sentences(), fps=10, channels=1)


def _build_no_audio(out: Path) -> None:
    _ffmpeg(*_pattern(320, 240, 25, 5.0), *_X264, str(out))


def _build_audio_only(out: Path, speech_short: Path) -> None:
    _ffmpeg("-i", str(speech_short), "-vn", "-c:a", "aac", "-ar", "22050", "-ac", "1", str(out))


def _build_silent(out: Path) -> None:
    silence = ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo"]
    aac = ["-c:a", "aac", "-b:a", "32k", "-t", "5"]
    _ffmpeg(*_pattern(320, 240, 25, 5.0), *silence, *_X264, *aac, str(out))


def _build_rotated(out: Path, no_audio: Path) -> None:
    # Phones store portrait video as landscape frames plus a display-matrix rotation.
    _ffmpeg("-display_rotation", "90", "-i", str(no_audio), "-c", "copy", str(out))


def _build_corrupt(out: Path) -> None:
    out.write_bytes(np.random.default_rng(1234).integers(0, 256, 48_000, np.uint8).tobytes())


def _build_truncated(out: Path, speech_short: Path) -> None:
    # ffmpeg writes the mp4 index (moov) at the end, so the first half has no index at all.
    data = speech_short.read_bytes()
    out.write_bytes(data[: len(data) // 2])


def _build_empty(out: Path) -> None:
    out.write_bytes(b"")


def _ensure(path: Path, build: Callable[[Path], None]) -> Path:
    """Build `path` unless it exists; write to a temp name first so a crash leaves no half file."""
    if path.exists():
        return path
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    build(tmp)
    sidecar = tmp.with_suffix(".json")
    if sidecar.exists():
        os.replace(sidecar, path.with_suffix(".json"))
    os.replace(tmp, path)
    return path


def build_all(out_dir: str | Path | None = None) -> dict[str, Path]:
    """Build every test medium (skipping those already built) and return them by name.

    Names: speech_short, speech_long (videos with espeak-ng speech; `<name>.json` beside each
    lists the sentences with their times), no_audio, audio_only, silent, rotated, corrupt,
    truncated, empty.
    """
    root = Path(out_dir) if out_dir is not None else default_out_dir()
    root = root / f"v{BUILD_VERSION}"
    root.mkdir(parents=True, exist_ok=True)
    media: dict[str, Path] = {}
    media["speech_short"] = _ensure(root / "speech_short.mp4", _build_speech_short)
    media["speech_long"] = _ensure(root / "speech_long.mp4", _build_speech_long)
    media["no_audio"] = _ensure(root / "no_audio.mp4", _build_no_audio)
    short, no_audio = media["speech_short"], media["no_audio"]
    media["audio_only"] = _ensure(root / "audio_only.m4a", lambda p: _build_audio_only(p, short))
    media["silent"] = _ensure(root / "silent.mp4", _build_silent)
    media["rotated"] = _ensure(root / "rotated.mp4", lambda p: _build_rotated(p, no_audio))
    media["corrupt"] = _ensure(root / "corrupt.mp4", _build_corrupt)
    media["truncated"] = _ensure(root / "truncated.mp4", lambda p: _build_truncated(p, short))
    media["empty"] = _ensure(root / "empty.mp4", _build_empty)
    return media


def _build_long_2h(out: Path, speech_long: Path) -> None:
    # The 10-minute fixture looped to two hours by stream copy (no re-encode: seconds, not hours).
    loops = 12  # 12 x ~10 min
    _ffmpeg("-stream_loop", str(loops - 1), "-i", str(speech_long), "-c", "copy", str(out))


def build_long(out_dir: str | Path | None = None) -> Path:
    """The ~2-hour source `long-2h` (speech_long looped), built on demand: benchmarks only."""
    media = build_all(out_dir)
    root = media["speech_long"].parent
    return _ensure(root / "long_2h.mp4", lambda p: _build_long_2h(p, media["speech_long"]))


if __name__ == "__main__":
    built = build_all(sys.argv[1] if len(sys.argv) > 1 else None)
    for name, path in built.items():
        print(f"{name:14s} {path} ({path.stat().st_size} bytes)")
