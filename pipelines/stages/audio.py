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

import av
import numpy as np

from clipforge.errors import MediaError
from clipforge.media import iter_audio
from clipforge.media.container import decode_frames, open_input
from clipforge.media.track import extract_track
from clipforge.observability.tracing import span
from models.chunking import SAMPLE_RATE, AudioChunk, ChunkOptions, split_chunks

# Audio gathered before a cut. It bounds memory twice: the samples (7.7 MB of float32) and the
# Silero VAD run over them (faster-whisper feeds up to 320 s to ONNX at once, and ONNX keeps
# its arena at the peak: 300 s windows held the ASR actor at 1.2-1.4 GB on a 2-hour source).
_WINDOW_S = 120.0
_SEARCH_S = 20.0  # the cut is placed in the quietest moment of the window's last seconds
_FRAME = 480  # 30 ms energy frames
_QUIET_FRAMES = 10  # the quiet moment is the lowest 300 ms average


def extract_audio_track(src: Path, dest: Path) -> Path:
    """Write the first audio stream of `src` as 16 kHz mono FLAC to `dest` (streamed by ffmpeg;
    `clipforge.media.track`, the decoding every transcription path shares)."""
    with span("ffmpeg", {"ffmpeg.step": "audio_track"}):
        return extract_track(src, dest)


def _native(stream: av.AudioStream | None) -> bool:
    return stream is not None and (stream.rate, stream.channels, stream.format.name) == (
        SAMPLE_RATE,
        1,
        "s16",
    )


def iter_track(path: Path, block_s: float = 60.0, start: int = 0) -> Iterator[np.ndarray]:
    """Float32 blocks of `block_s` seconds (the last shorter) of a 16 kHz mono track, from
    sample `start` on.

    The track import stores needs no resampling, so its samples are read as they are, without
    `iter_audio`'s resampler (whose clean-up costs a full garbage collection per file, a fifth
    of a second in a process holding torch), and `start` is reached by seeking. Other files
    (originals imported before tracks existed) go through `iter_audio`.
    """
    block = round(block_s * SAMPLE_RATE)
    with open_input(path) as container:
        stream = container.streams.audio[0] if container.streams.audio else None
        if stream is None or not _native(stream):
            yield from _skip(iter_audio(path, sample_rate=SAMPLE_RATE, block_s=block_s), start)
            return
        if start:
            assert stream.time_base is not None
            container.seek(int(start / SAMPLE_RATE / stream.time_base), stream=stream)
        yield from _blocks(
            _samples_from(decode_frames(container, stream, path), stream, start), block
        )


def _samples_from(
    frames: Iterator[av.AudioFrame], stream: av.AudioStream, start: int
) -> Iterator[np.ndarray]:
    """Each frame's int16 samples, without those before sample `start` (a seek lands early)."""
    for frame in frames:
        data = frame.to_ndarray().reshape(-1)
        if frame.pts is not None and stream.time_base is not None:
            first = round(frame.pts * stream.time_base * SAMPLE_RATE)
            if first < start:
                data = data[start - first :]
        if len(data):
            yield data


def _skip(blocks: Iterator[np.ndarray], start: int) -> Iterator[np.ndarray]:
    """Float blocks with the first `start` samples dropped (decoding files that cannot seek)."""
    for block in blocks:
        if start >= len(block):
            start -= len(block)
            continue
        yield block[start:]
        start = 0


def _blocks(pieces: Iterator[np.ndarray], block: int) -> Iterator[np.ndarray]:
    """int16 pieces regrouped as float32 blocks of `block` samples (the last one shorter)."""
    pending: list[np.ndarray] = []
    size = 0
    for piece in pieces:
        pending.append(piece)
        size += len(piece)
        if size >= block:
            joined = np.concatenate(pending)
            for at in range(0, len(joined) - block + 1, block):
                yield joined[at : at + block].astype(np.float32) / 32768.0
            rest = joined[len(joined) - len(joined) % block :]
            pending, size = [rest], len(rest)
    if size:
        yield np.concatenate(pending).astype(np.float32) / 32768.0


def read_track(path: Path) -> np.ndarray:
    """The whole track as float32 (see `iter_track`), filled into one array as it decodes.

    Joining blocks at the end would hold the track twice (2 x 460 MB for two hours), so the
    array is sized from the container's duration up front.
    """
    with open_input(path) as container:
        expected = round((container.duration or 0) / 1_000_000 * SAMPLE_RATE) + SAMPLE_RATE
    out = np.empty(expected, dtype=np.float32)
    size = 0
    for block in iter_track(path):
        if size + len(block) > len(out):  # the duration was short: grow with some slack
            grown = np.empty(round(1.25 * (size + len(block))), dtype=np.float32)
            grown[:size] = out[:size]
            out = grown
        out[size : size + len(block)] = block
        size += len(block)
    if size == 0:
        raise MediaError(f"{path.name}: the audio track has no samples")
    return out[:size]


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
        tail = next(iter_track(self.path, block_s=_SEARCH_S, start=begin), np.zeros(0))
        return begin + quiet_cut(tail)

    def __iter__(self) -> Iterator[AudioChunk]:
        begin = self._boundary(self.start_s) if self.start_s > 0 else 0
        stop = self._boundary(self.stop_s) if self.stop_s is not None else None
        window = round(_WINDOW_S * SAMPLE_RATE)
        pending = np.zeros(0, dtype=np.float32)
        start, index = begin, self.first_index  # start: track sample of pending[0]
        for block in iter_track(self.path, start=begin):
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
