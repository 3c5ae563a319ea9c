"""The audio track import stores once, and the stream of ASR chunks transcription cuts from it.

Decoding a long source's audio is the single most repeated cost of the old pipeline: every
stage decoded the whole original again. Import now extracts a 16 kHz mono FLAC once (ffmpeg
streams it, so memory does not depend on duration); transcribe and detect read that small file.

`stream_chunks` cuts the track into ASR chunks without holding it whole: it decodes blocks,
and whenever two minutes of audio have gathered it cuts the window at its quietest moment near the
end, splits the part before the cut into VAD chunks (`models.chunking.split_chunks`) and keeps
the rest for the next window. Keep spans still tile the whole track, so merging is unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from clipforge.media import iter_audio
from models.chunking import SAMPLE_RATE, AudioChunk, ChunkOptions, split_chunks

# Audio gathered before a cut. It bounds memory twice: the samples (7.7 MB of float32) and the
# Silero VAD run over them (faster-whisper feeds up to 320 s to ONNX at once, and ONNX keeps
# its arena at the peak: 300 s windows held the ASR actor at 1.2-1.4 GB on a 2-hour source).
_WINDOW_S = 120.0
_SEARCH_S = 20.0  # the cut is placed in the quietest moment of the window's last seconds
_FRAME = 480  # 30 ms energy frames
_QUIET_FRAMES = 10  # the quiet moment is the lowest 300 ms average


class ChunkStream:
    """Iterates the ASR chunks of a track, or of the part of it from `start_s` to `end_s`.

    A part's ends are moved to the quietest moment of the 20 s before them; both neighbours
    compute that from the same samples, so parts transcribed on different actors tile the track
    exactly. `first_index` numbers the chunks (parts use disjoint ranges). `end_s` (known once
    iteration has ended) is where the part stopped: the track's duration for the last part.
    """

    def __init__(
        self,
        path: Path,
        options: ChunkOptions,
        *,
        start_s: float = 0.0,
        end_s: float | None = None,
        first_index: int = 0,
    ) -> None:
        self.path = path
        self.options = options
        self.start_s, self.stop_s = start_s, end_s
        self.first_index = first_index
        self.end_s = 0.0

    def _boundary(self, at_s: float) -> int:
        """The sample where a part boundary nominally at `at_s` really falls."""
        search = round(_SEARCH_S * SAMPLE_RATE)
        begin = max(0, round(at_s * SAMPLE_RATE) - search)
        blocks = iter_audio(self.path, SAMPLE_RATE, block_s=_SEARCH_S, start=begin)
        tail = next(blocks, np.zeros(0, dtype=np.float32))
        return begin + quiet_cut(tail)

    def __iter__(self) -> Iterator[AudioChunk]:
        begin = self._boundary(self.start_s) if self.start_s > 0 else 0
        stop = self._boundary(self.stop_s) if self.stop_s is not None else None
        window = round(_WINDOW_S * SAMPLE_RATE)
        pending = np.zeros(0, dtype=np.float32)
        start, index = begin, self.first_index  # start: track sample of pending[0]
        for block in iter_audio(self.path, SAMPLE_RATE, block_s=60.0, start=begin):
            if stop is not None:
                block = block[: max(0, stop - start - len(pending))]
            pending = np.concatenate([pending, block])
            if len(pending) >= window:
                cut = quiet_cut(pending)
                for chunk in self._piece(pending[:cut], start, index):
                    index += 1
                    yield chunk
                pending, start = pending[cut:].copy(), start + cut
            if stop is not None and start + len(pending) >= stop:
                break
        self.end_s = (start + len(pending)) / SAMPLE_RATE
        for chunk in self._piece(pending, start, index):
            yield chunk

    def _piece(self, audio: np.ndarray, start: int, first_index: int) -> Iterator[AudioChunk]:
        """Chunks of one piece, with times and indexes moved to their place in the track."""
        if len(audio) == 0:
            return
        shift = start / SAMPLE_RATE
        for k, chunk in enumerate(split_chunks(audio, self.options)):
            yield dataclasses.replace(
                chunk,
                index=first_index + k,
                offset_s=chunk.offset_s + shift,
                keep_start_s=chunk.keep_start_s + shift,
                keep_end_s=chunk.keep_end_s + shift,
                source_duration_s=shift + len(audio) / SAMPLE_RATE,
            )


def quiet_cut(audio: np.ndarray) -> int:
    """A sample index near the end of `audio` in its quietest 300 ms (a pause, not a word)."""
    search = min(len(audio), round(_SEARCH_S * SAMPLE_RATE))
    tail = audio[len(audio) - search :]
    frames = len(tail) // _FRAME
    if frames <= _QUIET_FRAMES:
        return len(audio)
    energy = np.square(tail[: frames * _FRAME].astype(np.float64)).reshape(frames, _FRAME).mean(1)
    smooth = np.convolve(energy, np.ones(_QUIET_FRAMES) / _QUIET_FRAMES, mode="valid")
    best = int(np.argmin(smooth)) + _QUIET_FRAMES // 2
    return len(audio) - search + best * _FRAME
