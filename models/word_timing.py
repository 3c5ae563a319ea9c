"""Word start and end times refined against the audio around Whisper's estimates.

Whisper's word times come from cross-attention (dynamic time warping over 20 ms frames), which
is loose wherever a word borders a pause: the first word of a window is often put at the
window's start, in the silence before it, and a word after a pause often starts late. The signal
shows those boundaries plainly: a pause is a run of frames well below the word's own level.

The rule, per word, on 10 ms frames of the chunk's audio:

- the word's level is its loudest frame (over the word, and at least its first `probe_s`, so a
  word placed in the silence before its sound still sees it); a frame is *loud* when it comes
  within `drop_db` of that level and `floor_db` above the chunk's noise floor (its 10th
  percentile);
- a start in a loud frame moves back to the first frame of its loud run, when a quiet frame
  precedes it within `reach_s` and after the previous word's (refined) end; a start in a quiet
  frame moves forward to the word's first loud frame (the quiet before a word's sound is never
  the word: Whisper often puts a window's first word at the window's start);
- the end moves the same way mirrored: on to the end of its loud run when a quiet frame follows
  within `reach_s` (never past the next word's start), or back to the last loud frame within
  `reach_s` when it lies in a quiet frame.

Where no pause is in reach (words running into each other) nothing moves: the signal has no
boundary to offer there and Whisper's estimate stands. Speaker windows are placed on Whisper's
own times (`models.transcription`): their count and labels do not depend on this step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from models.types import Word

SAMPLE_RATE = 16_000
_FRAME = 160  # 10 ms


@dataclass(frozen=True, slots=True)
class TimingOptions:
    """How far and on what evidence word boundaries move (see the module docstring)."""

    reach_s: float = 0.3
    probe_s: float = 0.3
    drop_db: float = 25.0
    floor_db: float = 6.0


def frame_db(audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Energy of each 10 ms frame in dB (full scale)."""
    frames = len(audio) // _FRAME
    power = np.mean(
        np.square(audio[: frames * _FRAME].astype(np.float64)).reshape(frames, _FRAME), axis=1
    )
    db: npt.NDArray[np.float64] = 10.0 * np.log10(power + 1e-12)
    return db


def refine_words(
    audio: npt.NDArray[np.float32],
    offset_s: float,
    words: Sequence[Word],
    options: TimingOptions | None = None,
) -> tuple[Word, ...]:
    """`words` (absolute times, in order) with starts and ends moved to the audio's boundaries.

    `audio` is the chunk the words were recognised in, starting at `offset_s` in the source.
    """
    opts = options or TimingOptions()
    db = frame_db(audio)
    if len(db) == 0 or not words:
        return tuple(words)
    floor = float(np.percentile(db, 10)) + opts.floor_db
    reach = round(opts.reach_s * 100)

    def frame(t: float) -> int:
        return min(max(round((t - offset_s) * 100), 0), len(db) - 1)

    out: list[Word] = []
    for i, word in enumerate(words):
        lo = frame(out[-1].end) if out else 0  # never before the previous word's end
        hi = frame(words[i + 1].start) if i + 1 < len(words) else len(db) - 1
        first, last = frame(word.start), max(frame(word.end) - 1, frame(word.start))
        level = float(db[first : max(first + round(opts.probe_s * 100), last + 1)].max())
        loud = db > max(level - opts.drop_db, floor)
        # Forward as far as the word's own end: the quiet before its sound is never the word.
        start = _move_start(loud, first, max(lo, first - reach), last)
        end = _move_end(loud, last, max(start, last - reach), min(hi, last + reach))
        out.append(
            replace(word, start=offset_s + start / 100, end=offset_s + max(end + 1, start) / 100)
        )
    return tuple(out)


def _move_start(loud: npt.NDArray[np.bool_], at: int, lo: int, hi: int) -> int:
    """The first loud frame of the run `at` is in (if a quiet frame precedes it from `lo`),
    or the next loud frame up to `hi` when `at` is quiet; else `at`."""
    if not loud[at]:
        ahead = np.flatnonzero(loud[at : hi + 1])
        return at + int(ahead[0]) if len(ahead) else at
    quiet = np.flatnonzero(~loud[lo:at])
    return lo + int(quiet[-1]) + 1 if len(quiet) else at


def _move_end(loud: npt.NDArray[np.bool_], at: int, lo: int, hi: int) -> int:
    """Mirror of `_move_start`: the last loud frame of the run `at` is in (if a quiet frame
    follows it up to `hi`), or the previous loud frame down to `lo` when `at` is quiet."""
    if not loud[at]:
        behind = np.flatnonzero(loud[lo : at + 1])
        return lo + int(behind[-1]) if len(behind) else at
    quiet = np.flatnonzero(~loud[at + 1 : hi + 1])
    return at + int(quiet[0]) if len(quiet) else at
