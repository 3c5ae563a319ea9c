"""Whether a clip's end needs a fade: measured on the source's audio just before the end.

Selection puts clip ends in pauses where the audio has them (`models.clean_ends`); where it has
none, the export fades the last `FADE_OUT_S` out rather than cut the voice off. The export
measures the source itself (a fraction of a second of audio, decoded by ffmpeg) instead of
carrying a flag from detect: it renders clips whose bounds came from anywhere (the detect stage,
an API client's own clip, a backfill), and the same rule applies to all of them.
"""

from __future__ import annotations

from pathlib import Path

from clipforge.media.audio import decode_span
from clipforge.media.track import SAMPLE_RATE
from models.clean_ends import FADE_OUT_S, MIN_QUIET_S, fade_out_for

_TAIL_S = 2 * MIN_QUIET_S


def fade_out_at(src: Path, end_s: float) -> float:
    """Seconds of fade-out for a clip of `src` ending at `end_s`: 0 when it ends on a pause.

    Audio that cannot be read there (no audio stream, a clip ending at 0) gets the fade: it
    costs nothing where the audio is quiet after all.
    """
    start = max(0.0, end_s - _TAIL_S)
    if end_s - start < MIN_QUIET_S:
        return FADE_OUT_S
    tail = decode_span(src, start, end_s - start)
    if tail is None or len(tail) < MIN_QUIET_S * SAMPLE_RATE:
        return FADE_OUT_S
    return fade_out_for(tail, SAMPLE_RATE)
