"""Build ClipForge's test media deterministically into a cache folder.

Speech comes from Debian's espeak-ng (known texts in `tests/fixtures/*.txt`, so tests know the
reference transcript); pictures are ffmpeg test patterns (`testsrc2`) with hard hue cuts as scene
changes. The face fixtures (`face_pan`, `two_speakers`, built in `face_media.py` beside this file)
move a real public-domain portrait (NASA's astronaut photograph shipped in scikit-image) and write
`<name>.truth.json` with the face boxes and who speaks when. Media are built, never committed: the folder defaults to `<repo>/.cache/test-media/`
(override with `CLIPFORGE_TEST_MEDIA_DIR`) and files already built are kept.

Usage: `python scripts/make_test_media.py [OUT_DIR]`; tests and benchmarks call `build_all()`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from clipforge.media.ffmpeg import run_ffmpeg

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"
# Bump when a recipe changes so stale caches are not reused.
BUILD_VERSION = 2
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
    # clipforge.media starts every ffmpeg (no terminal on stdin, a timeout, stderr in the error).
    run_ffmpeg(args, timeout_s=3600, step="test_media")


def _espeak(text: str, voice: str = "en-us", pitch: int | None = None) -> np.ndarray:
    """Synthesize text with espeak-ng; int16 mono samples at ESPEAK_RATE."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install -y espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "speech.wav"
        cmd = [exe, "-v", voice, "-s", str(ESPEAK_WPM), "-w", str(wav_path)]
        cmd += [] if pitch is None else ["-p", str(pitch)]
        cmd.append(text)
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


def _face_media() -> ModuleType:
    """scripts/face_media.py (scripts/ is not a package, so it is loaded by path)."""
    name = "clipforge_face_media"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("face_media.py")
        )
        assert spec is not None and spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def truth(media: Path) -> dict[str, Any]:
    """The truth written beside a face fixture (`<name>.truth.json`)."""
    data: dict[str, Any] = json.loads(media.with_suffix(".truth.json").read_text(encoding="utf-8"))
    return data


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


def _build_face_pan(out: Path) -> None:
    """~20 s: the portrait pans across the left half, a busy distractor fills the right half."""
    fm = _face_media()
    sentences = [s.strip() + "." for s in short_text().split(".") if s.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        cues = _speech_track(sentences, wav)
        samples = _read_wav(wav)
        frames = round(len(samples) / ESPEAK_RATE * fm.FPS)
        boxes: list[tuple[int, int, int, int]] = []
        fm.encode(
            fm.face_pan_frames(fm.frame_energy(samples, ESPEAK_RATE, frames), boxes), wav, out
        )
    info = {"width": fm.WIDTH, "height": fm.HEIGHT, "fps": fm.FPS, "frames": frames}
    info |= {"distractor": [fm.WIDTH // 2, 0, fm.WIDTH // 2, fm.HEIGHT], "sentences": cues}
    _write_truth(out, info | {"face_boxes": [list(b) for b in boxes]})


# Two clearly different espeak-ng voices: (voice+variant, pitch 0-99).
DIALOGUE_VOICES = (("en-us+f3", 70), ("en-us+m3", 30))
_TURN_GAPS_S = (0.6, 0.8, 0.5, 0.9, 0.7)


def dialogue_turns() -> list[tuple[int, str]]:
    """(speaker, text) turns of the two-speaker fixture, in order."""
    lines = (FIXTURES_DIR / "two_speakers.txt").read_text(encoding="utf-8").splitlines()
    return [
        (int(s), text.strip()) for s, _, text in (ln.partition("|") for ln in lines if ln.strip())
    ]


def _voiced(samples: np.ndarray) -> np.ndarray:
    """Samples trimmed to the voiced span (espeak-ng pads with near-silence): exact truth times."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 200)
    return samples[loud[0] : loud[-1] + 1] if loud.size else samples


def _build_two_speakers(out: Path) -> None:
    """~30 s: two faces side by side, two voices taking turns, each mouth moving with its voice."""
    fm = _face_media()
    tracks: list[list[np.ndarray]] = [[_silence(0.8)], [_silence(0.8)]]
    utterances: list[dict[str, Any]] = []
    t = len(tracks[0][0])
    for i, (speaker, text) in enumerate(dialogue_turns()):
        voice, pitch = DIALOGUE_VOICES[speaker]
        speech = _voiced(_espeak(text, voice, pitch))
        gap = _silence(_TURN_GAPS_S[i % len(_TURN_GAPS_S)])
        face = ("left", "right")[speaker]
        span = {"start": t / ESPEAK_RATE, "end": (t + len(speech)) / ESPEAK_RATE}
        utterances.append({"speaker": speaker, "face": face, **span, "text": text})
        tracks[speaker] += [speech, gap]
        tracks[1 - speaker].append(np.zeros(len(speech) + len(gap), np.int16))
        t += len(speech) + len(gap)
    voices = [np.concatenate(track) for track in tracks]
    frames = round(t / ESPEAK_RATE * fm.FPS)
    energies = tuple(fm.frame_energy(v, ESPEAK_RATE, frames) for v in voices)
    boxes: tuple[list[Any], list[Any]] = ([], [])
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "dialogue.wav"
        _write_wav(wav, voices[0] + voices[1])  # never both at once: no overflow
        fm.encode(fm.two_speaker_frames(energies, boxes), wav, out)
    info = {"width": fm.WIDTH, "height": fm.HEIGHT, "fps": fm.FPS, "frames": frames}
    faces = {
        name: {"speaker": k, "boxes": [list(b) for b in boxes[k]]}
        for k, name in enumerate(("left", "right"))
    }
    voice_info = [{"voice": v, "pitch": p} for v, p in DIALOGUE_VOICES]
    _write_truth(out, info | {"utterances": utterances, "voices": voice_info, "faces": faces})


def _write_truth(out: Path, data: dict[str, Any]) -> None:
    data["duration_s"] = data["frames"] / data["fps"]
    out.with_suffix(".truth.json").write_text(
        json.dumps(data, separators=(",", ":")), encoding="utf-8"
    )


def _ensure(path: Path, build: Callable[[Path], None]) -> Path:
    """Build `path` unless it exists; write to a temp name first so a crash leaves no half file."""
    if path.exists():
        return path
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    build(tmp)
    for suffix in (".json", ".truth.json"):  # sidecars first: the medium existing means complete
        sidecar = tmp.with_suffix(suffix)
        if sidecar.exists():
            os.replace(sidecar, path.with_suffix(suffix))
    os.replace(tmp, path)
    return path


def build_all(out_dir: str | Path | None = None) -> dict[str, Path]:
    """Build every test medium (skipping those already built) and return them by name.

    Names: speech_short, speech_long (videos with espeak-ng speech; `<name>.json` beside each
    lists the sentences with their times), no_audio, audio_only, silent, rotated, corrupt,
    truncated, empty, face_pan, two_speakers (`truth(path)` reads their `<name>.truth.json`).
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
    media["face_pan"] = _ensure(root / "face_pan.mp4", _build_face_pan)
    media["two_speakers"] = _ensure(root / "two_speakers.mp4", _build_two_speakers)
    return media


def _looped(source: Path, name: str, loops: int) -> Path:
    """`source` played `loops` times into `name` beside it, by stream copy (no re-encode:
    seconds, not hours), built once."""
    return _ensure(
        source.with_name(name),
        lambda p: _ffmpeg("-stream_loop", str(loops - 1), "-i", str(source), "-c", "copy", str(p)),
    )


def build_long(out_dir: str | Path | None = None) -> Path:
    """The ~2-hour source `long-2h` (speech_long looped), built on demand: benchmarks only."""
    return _looped(build_all(out_dir)["speech_long"], "long_2h.mp4", 12)  # 12 x ~10 min


def build_long_two_speakers(out_dir: str | Path | None = None) -> Path:
    """The ~2-hour source `long-2h-2p`: two_speakers (two voices taking turns) looped, built on
    demand: benchmarks only (speaker turns clustered over a long recording)."""
    # 209 x 34.5 s: just over two hours
    return _looped(build_all(out_dir)["two_speakers"], "long_2h_2p.mp4", 209)


def build_face_pan_long(out_dir: str | Path | None = None) -> Path:
    """`face_pan` looped three times (about a minute): room for a 45 s clip with a face, for the
    export benchmark. Built on demand, no truth file (the loop repeats the pan)."""
    return _looped(build_all(out_dir)["face_pan"], "face_pan_long.mp4", 3)


if __name__ == "__main__":
    built = build_all(sys.argv[1] if len(sys.argv) > 1 else None)
    for name, path in built.items():
        print(f"{name:14s} {path} ({path.stat().st_size} bytes)")
