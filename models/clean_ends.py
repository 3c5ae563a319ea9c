"""Clean clip edges: on a sentence edge, and in a pause of the audio.

A clip that stops while the speaker's sentence goes on, or with the voice still loud in its last
frames, sounds cut off. Selection (`models.select`) therefore moves a clip's edges to sentence
edges (`sentence_edges`) and then, with the audio track, into a pause: the end goes a little
into the first stretch of at least `MIN_QUIET_S` below `QUIET_DBFS` after the last word
(`quiet_after`), the start likewise before the first word (`quiet_before`). Where the audio has no
such pause (music under the voice, a fast talker), the export fades the last `FADE_OUT_S` out
instead (`fade_out_for`), so the cut is never a click.

Word times come from the ASR and may be off by a few tens of milliseconds either way; the dBFS
measurement is what decides where the pause really is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from models.highlight_windows import ends_sentence
from models.types import Word

QUIET_DBFS = -35.0  # below this (RMS of 10 ms frames) the audio counts as a pause
MIN_QUIET_S = 0.15  # a pause lasts at least this long: shorter dips are between syllables
FADE_OUT_S = 0.12  # the export's fade where a clip could not end on a pause
_FRAME_S = 0.01


def frame_dbfs(audio: npt.NDArray[np.floating], sample_rate: int) -> npt.NDArray[np.float64]:
    """RMS level in dBFS of each whole 10 ms frame of `audio` (float samples in -1..1)."""
    size = max(1, round(_FRAME_S * sample_rate))
    frames = len(audio) // size
    if frames == 0:
        return np.zeros(0)
    blocks = np.asarray(audio[: frames * size], dtype=np.float64).reshape(frames, size)
    rms = np.sqrt(np.mean(np.square(blocks), axis=1))
    return np.asarray(20 * np.log10(np.maximum(rms, 1e-6)), dtype=np.float64)


def _first_pause(quiet: npt.NDArray[np.bool_], search: int) -> tuple[int, int] | None:
    """(first frame, length in frames) of the first run of `MIN_QUIET_S` quiet frames that
    starts within the first `search` frames."""
    need = math.ceil(MIN_QUIET_S / _FRAME_S - 1e-9)
    run = 0
    for i, q in enumerate(quiet):
        run = run + 1 if q else 0
        first = i - run + 1
        if first > search:
            return None
        if run >= need:
            length = need
            while first + length < len(quiet) and quiet[first + length]:
                length += 1
            return first, length
    return None


def quiet_after(
    audio: npt.NDArray[np.floating],
    sample_rate: int,
    at_s: float,
    limit_s: float,
    *,
    search_s: float,
    keep_s: float,
) -> float | None:
    """A clip end in the first pause after `at_s` (the last word's end), or None.

    The pause must start within `search_s` of `at_s` and last `MIN_QUIET_S` before `limit_s`
    (the next word, the end of the media or the longest clip allowed). The end lies `keep_s` into
    it (at least `MIN_QUIET_S`, at most the pause), so the clip's last frames are quiet.
    """
    begin, stop = (
        round(at_s * sample_rate),
        round(min(limit_s, len(audio) / sample_rate) * sample_rate),
    )
    if stop <= begin:
        return None
    quiet = frame_dbfs(audio[begin:stop], sample_rate) < QUIET_DBFS
    found = _first_pause(quiet, round(search_s / _FRAME_S))
    if found is None:
        return None
    first, length = found
    keep = min(length, max(round(MIN_QUIET_S / _FRAME_S), round(keep_s / _FRAME_S)))
    return begin / sample_rate + (first + keep) * _FRAME_S


def quiet_before(
    audio: npt.NDArray[np.floating],
    sample_rate: int,
    at_s: float,
    limit_s: float,
    *,
    search_s: float,
    keep_s: float,
) -> float | None:
    """A clip start in the last pause before `at_s` (the first word's start), or None; the
    mirror image of `quiet_after`, with `limit_s` the previous word's end (or 0)."""
    begin, stop = round(max(0.0, limit_s) * sample_rate), round(at_s * sample_rate)
    stop = min(stop, len(audio))
    if stop <= begin:
        return None
    quiet = frame_dbfs(audio[begin:stop][::-1], sample_rate) < QUIET_DBFS
    found = _first_pause(quiet, round(search_s / _FRAME_S))
    if found is None:
        return None
    first, length = found
    keep = min(length, max(round(MIN_QUIET_S / _FRAME_S), round(keep_s / _FRAME_S)))
    return max(0.0, stop / sample_rate - (first + keep) * _FRAME_S)


def ends_quiet(tail: npt.NDArray[np.floating], sample_rate: int) -> bool:
    """Whether the last `MIN_QUIET_S` of `tail` (a clip's last samples) is a pause."""
    levels = frame_dbfs(tail[len(tail) - round(MIN_QUIET_S * sample_rate) :], sample_rate)
    return bool(len(levels)) and bool(np.all(levels < QUIET_DBFS))


def fade_out_for(tail: npt.NDArray[np.floating], sample_rate: int) -> float:
    """Seconds of fade-out a clip ending with `tail` needs: none when it ends on a pause."""
    return 0.0 if ends_quiet(tail, sample_rate) else FADE_OUT_S


def sentence_edges(words: Sequence[Word]) -> tuple[list[bool], list[bool]] | None:
    """(starts, ends): where a sentence starts (word i) and ends (word i), or None when the
    transcript has no sentence punctuation at all (then only pauses can tell, see select).

    A change of speaker ends a sentence too: the next voice starts a new one.
    """
    if not any(ends_sentence(w.text) for w in words):
        return None
    ends = [
        ends_sentence(w.text)
        or i + 1 == len(words)
        or (w.speaker is not None and words[i + 1].speaker not in (None, w.speaker))
        for i, w in enumerate(words)
    ]
    starts = [i == 0 or ends[i - 1] for i in range(len(words))]
    return starts, ends
