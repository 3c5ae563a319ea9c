"""Every decode of audio to mono float32 samples at a fixed rate (16 kHz for ASR).

Two readers, one for each shape of work, both here so every caller hears the same samples:

- `iter_audio` streams a whole file (or the rest of it from a sample) in blocks and
  `decode_audio` fills one array from it. They read in-process with PyAV. A file that already
  is the 16 kHz mono track import stores (`clipforge.media.track`) is read as it is: its int16
  samples scaled to float, no resampler (whose clean-up costs a full garbage collection per
  file, a fifth of a second in a process holding torch), and a start sample is reached by
  seeking. Any other file goes through PyAV's resampler (FFmpeg's C code does the downmix and
  rate conversion). A multi-hour stream costs the same memory as a one-minute one.
- `decode_span` cuts a short span out of a source with ffmpeg (input seeking: only that span is
  decoded), with the same conversion ffmpeg applies when it writes the track, so a measurement
  on the source's span agrees with the transcribed track.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, overload

import av
import numpy as np
import numpy.typing as npt

from clipforge.errors import MediaError
from clipforge.media.container import decode_frames, open_input
from clipforge.media.errors import EmptyMedia, NoAudioStream
from clipforge.media.ffmpeg import ffmpeg_pipe

_SPAN_TIMEOUT_S = 600.0  # a span is a clip's audio at most; ten minutes means ffmpeg is stuck
_RAW_FORMATS: dict[type[np.generic], str] = {np.float32: "f32le", np.int16: "s16le"}


def decode_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio stream of `path` to one mono float32 array in [-1, 1].

    The array is sized from the container's duration up front and filled as blocks decode:
    joining blocks at the end would hold the audio twice (2 x 460 MB for two hours at 16 kHz).

    Raises:
        EmptyMedia, CorruptMedia: unreadable input, or an audio stream without samples.
        NoAudioStream: the file has no audio stream.
    """
    with open_input(path) as container:
        expected = round((container.duration or 0) / 1_000_000 * sample_rate) + sample_rate
    out = np.empty(expected, dtype=np.float32)
    size = 0
    for block in iter_audio(path, sample_rate=sample_rate, block_s=60.0):
        if size + len(block) > len(out):  # the duration was short: grow with some slack
            grown = np.empty(round(1.25 * (size + len(block))), dtype=np.float32)
            grown[:size] = out[:size]
            out = grown
        out[size : size + len(block)] = block
        size += len(block)
    return out[:size]


def iter_audio(
    path: str | Path, sample_rate: int = 16000, block_s: float = 30.0, start: int = 0
) -> Iterator[np.ndarray]:
    """Stream the first audio stream of `path` as mono float32 blocks of `block_s` seconds,
    from sample `start` (at `sample_rate`) on.

    Every block has exactly `round(block_s * sample_rate)` samples except the last, so block `i`
    starts at sample `start + i * block_len`. At least one block is yielded when `start` is 0.

    Raises:
        EmptyMedia, CorruptMedia: unreadable input, or an audio stream without samples.
        NoAudioStream: the file has no audio stream.
    """
    if sample_rate <= 0 or block_s <= 0 or start < 0:
        raise ValueError("sample_rate and block_s must be positive, start not negative")
    block_len = round(block_s * sample_rate)
    total = 0
    for block in _blocks(_pieces(Path(path), sample_rate, start), block_len):
        total += len(block)
        yield block
    if total == 0 and start == 0:
        raise EmptyMedia(path, "the audio stream has no samples")


@overload
def decode_span(
    src: Path,
    start_s: float,
    duration_s: float,
    sample_rate: int = ...,
    dtype: type[np.float32] = ...,
) -> npt.NDArray[np.float32] | None: ...
@overload
def decode_span(
    src: Path, start_s: float, duration_s: float, sample_rate: int, dtype: type[np.int16]
) -> npt.NDArray[np.int16] | None: ...
def decode_span(
    src: Path,
    start_s: float,
    duration_s: float,
    sample_rate: int = 16000,
    dtype: type[np.float32] | type[np.int16] = np.float32,
) -> npt.NDArray[Any] | None:
    """`duration_s` of `src`'s first audio stream from `start_s`, mono at `sample_rate`, as
    float32 in [-1, 1] or int16; None where ffmpeg cannot read it (no audio stream)."""
    output = ["-map", "0:a:0", "-ac", "1", "-ar", str(sample_rate), "-f", _RAW_FORMATS[dtype]]
    try:
        raw = ffmpeg_pipe(
            src, start_s, duration_s, output, timeout_s=_SPAN_TIMEOUT_S, step="audio_span"
        )
    except MediaError:
        return None
    return np.frombuffer(raw, dtype=dtype)


def _native(stream: av.AudioStream, sample_rate: int) -> bool:
    """Whether the stream already holds what we want: mono int16 at `sample_rate` (the track)."""
    return (stream.rate, stream.channels, stream.format.name) == (sample_rate, 1, "s16")


def _pieces(path: Path, sample_rate: int, start: int) -> Iterator[np.ndarray]:
    """Mono float32 pieces of any length, from sample `start` on."""
    with open_input(path) as container:
        if not container.streams.audio:
            raise NoAudioStream(path)
        stream = container.streams.audio[0]
        if not _native(stream, sample_rate):
            yield from _skip(_resampled(container, stream, path, sample_rate), start)
            return
        if start:
            assert stream.time_base is not None
            container.seek(int(start / sample_rate / stream.time_base), stream=stream)
        for frame in decode_frames(container, stream, path):
            data = frame.to_ndarray().reshape(-1)
            if frame.pts is not None and stream.time_base is not None:
                first = round(frame.pts * stream.time_base * sample_rate)
                if first < start:  # a seek lands early
                    data = data[start - first :]
            if len(data):
                yield data.astype(np.float32) / 32768.0


def _resampled(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    path: Path,
    sample_rate: int,
) -> Iterator[np.ndarray]:
    """Resampled mono float32 pieces, one per decoded frame (a few ms each)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    try:
        for frame in decode_frames(container, stream, path):
            for out in resampler.resample(frame):
                yield out.to_ndarray().reshape(-1)
        for out in resampler.resample(None):  # flush the resampler's delay line
            yield out.to_ndarray().reshape(-1)
    finally:
        # PyAV resampler graphs are only freed by the cycle collector (faster-whisper #390).
        del resampler
        gc.collect()


def _skip(pieces: Iterator[np.ndarray], start: int) -> Iterator[np.ndarray]:
    """Pieces with the first `start` samples dropped (a resampled stream cannot seek exactly)."""
    for piece in pieces:
        if start >= len(piece):
            start -= len(piece)
            continue
        yield piece[start:]
        start = 0


def _blocks(pieces: Iterator[np.ndarray], block: int) -> Iterator[np.ndarray]:
    """Pieces regrouped as blocks of `block` samples (the last one shorter)."""
    pending: list[np.ndarray] = []
    size = 0
    for piece in pieces:
        pending.append(piece)
        size += len(piece)
        if size >= block:
            joined = np.concatenate(pending)
            for at in range(0, len(joined) - block + 1, block):
                yield joined[at : at + block]
            rest = joined[len(joined) - len(joined) % block :]
            pending, size = ([rest], len(rest)) if len(rest) else ([], 0)
    if size:
        yield np.concatenate(pending)
