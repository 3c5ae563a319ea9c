"""The one way audio becomes 16 kHz mono samples for ASR: ffmpeg into a FLAC track.

Import stores this track and the worker transcribes it; `clipforge.transcribe()` and the Serve
ASR endpoint decode through the same command, so all three hear the same samples. They used to
differ: the notebook API and Serve resampled with PyAV's resampler, the worker heard ffmpeg's,
and on a 44.1 kHz AAC copy of a real call the two gave "I need to design." and "I needed to
decide." for the same words (Whisper is sensitive to such sample-level differences).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from clipforge.media.audio import decode_audio
from clipforge.media.ffmpeg import run_ffmpeg

SAMPLE_RATE = 16_000
# Streaming a two-hour source's audio into FLAC takes a minute or two on a slow host.
_EXTRACT_TIMEOUT_S = 3600.0


def extract_track(src: Path, dest: Path) -> Path:
    """Write the first audio stream of `src` as 16 kHz mono FLAC to `dest` (streamed by ffmpeg).

    Raises:
        MediaError: ffmpeg could not read or convert `src`.
        ToolTimeout: ffmpeg ran past `_EXTRACT_TIMEOUT_S`.
    """
    args = ["-i", str(src), "-map", "0:a:0", "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "flac"]
    args += ["-compression_level", "1"]  # speed over size: the track is an intermediate
    run_ffmpeg([*args, str(dest)], timeout_s=_EXTRACT_TIMEOUT_S, step="audio_track")
    return dest


def decode_track(src: Path) -> np.ndarray:
    """The samples of `src`'s audio track exactly as the worker reads them (float32, int16
    resolution), for sources held in memory whole (the online endpoint's uploads)."""
    with tempfile.TemporaryDirectory(prefix="cf-track-") as folder:
        return decode_audio(extract_track(src, Path(folder) / "track.flac"), SAMPLE_RATE)
