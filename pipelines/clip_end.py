"""Whether a clip's end needs a fade: measured on the source's audio just before the end.

Selection puts clip ends in pauses where the audio has them (`models.clean_ends`); where it has
none, the export fades the last `FADE_OUT_S` out rather than cut the voice off. The export
measures the source itself (a fraction of a second of audio, decoded by ffmpeg) instead of
carrying a flag from detect: it renders clips whose bounds came from anywhere (the detect stage,
an API client's own clip, a backfill), and the same rule applies to all of them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from clipforge.media import ffmpeg_exe
from models.clean_ends import FADE_OUT_S, MIN_QUIET_S, fade_out_for

_RATE = 16_000
_TAIL_S = 2 * MIN_QUIET_S


def fade_out_at(src: Path, end_s: float) -> float:
    """Seconds of fade-out for a clip of `src` ending at `end_s`: 0 when it ends on a pause.

    Audio that cannot be read there (no audio stream, a clip ending at 0) gets the fade: it
    costs nothing where the audio is quiet after all.
    """
    start = max(0.0, end_s - _TAIL_S)
    if end_s - start < MIN_QUIET_S:
        return FADE_OUT_S
    cmd = [
        ffmpeg_exe(),
        "-nostdin",
        "-v",
        "error",
        "-ss",
        f"{start:.3f}",
        "-i",
        str(src),
        "-t",
        f"{end_s - start:.3f}",
        "-map",
        "0:a:0",
        "-ac",
        "1",
        "-ar",
        str(_RATE),
        "-f",
        "f32le",
        "-",
    ]
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    tail = np.frombuffer(done.stdout, dtype=np.float32)
    if done.returncode != 0 or len(tail) < MIN_QUIET_S * _RATE:
        return FADE_OUT_S
    return fade_out_for(tail, _RATE)
