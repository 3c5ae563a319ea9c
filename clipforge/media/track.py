"""The one way audio becomes 16 kHz mono samples for ASR: ffmpeg into a FLAC track.

Import stores this track and the worker transcribes it; `clipforge.transcribe()` and the Serve
ASR endpoint decode through the same command, so all three hear the same samples. They used to
differ: the notebook API and Serve resampled with PyAV's resampler, the worker heard ffmpeg's,
and on a 44.1 kHz AAC copy of a real call the two gave "I need to design." and "I needed to
decide." for the same words (Whisper is sensitive to such sample-level differences).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from clipforge.errors import tool_failure
from clipforge.media.audio import decode_audio
from clipforge.media.ffmpeg import ffmpeg_exe

SAMPLE_RATE = 16_000


def extract_track(src: Path, dest: Path) -> Path:
    """Write the first audio stream of `src` as 16 kHz mono FLAC to `dest` (streamed by ffmpeg).

    Raises:
        MediaError: ffmpeg could not read or convert `src`.
    """
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-i",
        str(src),
        "-map",
        "0:a:0",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-c:a",
        "flac",
        "-compression_level",
        "1",  # speed over size: the track is an intermediate
        str(dest),
    ]
    done = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise tool_failure(
            f"could not extract the audio track: {done.stderr.strip()[-500:]}", done.stderr
        )
    return dest


def decode_track(src: Path) -> np.ndarray:
    """The samples of `src`'s audio track exactly as the worker reads them (float32, int16
    resolution), for sources held in memory whole (the online endpoint's uploads)."""
    with tempfile.TemporaryDirectory(prefix="cf-track-") as folder:
        return decode_audio(extract_track(src, Path(folder) / "track.flac"))


def decode_span(src: Path, start_s: float, duration_s: float) -> np.ndarray | None:
    """`duration_s` of `src`'s first audio stream from `start_s`, as 16 kHz mono float32 (the
    same conversion as the track), or None where ffmpeg cannot read it (no audio stream)."""
    cmd = [
        ffmpeg_exe(),
        "-nostdin",
        "-v",
        "error",
        "-ss",
        f"{start_s:.3f}",
        "-i",
        str(src),
        "-t",
        f"{duration_s:.3f}",
        "-map",
        "0:a:0",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-f",
        "f32le",
        "-",
    ]
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if done.returncode != 0:
        return None
    return np.frombuffer(done.stdout, dtype=np.float32)
