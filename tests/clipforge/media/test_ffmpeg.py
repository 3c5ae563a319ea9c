"""The one way ffmpeg runs (clipforge/media/ffmpeg.py) and the audio decoders built on it.

Real ffmpeg on the generated test media; each test runs in about a second.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from clipforge.errors import DependencyUnavailable, MediaError, tool_failure
from clipforge.media import ToolTimeout, decode_audio, decode_span, iter_audio, run_ffmpeg
from clipforge.media.ffmpeg import ffmpeg_read, ffmpeg_write
from clipforge.media.track import SAMPLE_RATE, extract_track

_ENDLESS = ["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000"]


def test_stdin_is_never_the_terminal() -> None:
    # An input of "-" reads stdin: /dev/null gives ffmpeg nothing, so it fails at once instead
    # of waiting on (or being stopped for reading) a terminal.
    with pytest.raises(MediaError, match=r"ffmpeg probe_stdin failed: .+"):
        run_ffmpeg(["-i", "-", "-f", "null", "-"], timeout_s=30, step="probe_stdin")


def test_a_stuck_ffmpeg_is_killed_at_its_timeout() -> None:
    began = time.monotonic()
    with pytest.raises(ToolTimeout, match=r"ffmpeg endless ran longer than 0\.5 s") as caught:
        run_ffmpeg([*_ENDLESS, "-f", "null", "-"], timeout_s=0.5, step="endless")
    assert caught.value.retryable and time.monotonic() - began < 10
    began = time.monotonic()
    with pytest.raises(ToolTimeout):
        list(ffmpeg_read([*_ENDLESS, "-f", "s16le", "pipe:1"], 1600, timeout_s=0.5, step="x"))
    assert time.monotonic() - began < 10


def test_failures_carry_ffmpegs_reason(tmp_path: Path) -> None:
    missing = tmp_path / "missing.mp4"
    with pytest.raises(MediaError, match=r"ffmpeg cut failed: .*No such file or directory"):
        run_ffmpeg(["-i", str(missing), "-f", "null", "-"], timeout_s=30, step="cut")
    # A full disk in that text is the host's outage, not the input's fault.
    assert isinstance(tool_failure("x", "No space left on device"), DependencyUnavailable)


def test_streams_in_and_out(tmp_path: Path) -> None:
    frames = [bytes([16 * k]) * (32 * 16) for k in range(10)]
    out = tmp_path / "grey.mkv"
    args = ["-f", "rawvideo", "-pix_fmt", "gray", "-s", "32x16", "-r", "10", "-i", "-"]
    ffmpeg_write([*args, "-c:v", "ffv1", str(out)], iter(frames), timeout_s=30, step="encode")
    back = list(
        ffmpeg_read(["-i", str(out), "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"], 32 * 16,
                    timeout_s=30, step="decode")
    )  # fmt: skip
    assert back == frames  # ffv1 is lossless
    # Stopping early ends the process (and does not hang on a full pipe).
    reader = ffmpeg_read([*_ENDLESS, "-f", "s16le", "pipe:1"], 160, timeout_s=30, step="x")
    assert len(next(reader)) == 160
    reader.close()


def test_one_decoder_for_whole_files_parts_and_spans(
    test_media: dict[str, Path], tmp_path: Path
) -> None:
    src = test_media["speech_short"]
    track = extract_track(src, tmp_path / "track.flac")
    samples = decode_audio(track)
    assert samples.dtype == np.float32 and len(samples) > 15 * SAMPLE_RATE
    # The track is read as it is; any other file through the resampler: at the track's own
    # rate and layout both give the same samples.
    resampled = np.concatenate(list(iter_audio(src, block_s=7.0)))
    assert abs(len(resampled) - len(samples)) < SAMPLE_RATE // 10
    start = 5 * SAMPLE_RATE + 3
    for path in (track, src):  # from a sample: full blocks, sample-exact, either way
        blocks = list(iter_audio(path, block_s=2.0, start=start))
        whole = decode_audio(path)
        assert all(len(b) == 2 * SAMPLE_RATE for b in blocks[:-1])
        assert np.array_equal(np.concatenate(blocks), whole[start:])
    # A span of the source: int16 has the track's conversion exactly (both integer outputs);
    # float32 is the same waveform at the same time (ffmpeg does not scale a float downmix of
    # this stereo source down as it does for integers, so its level is higher).
    reference = samples[5 * SAMPLE_RATE : 7 * SAMPLE_RATE]
    pcm = decode_span(src, 5.0, 2.0, SAMPLE_RATE, np.int16)
    assert pcm is not None and pcm.dtype == np.int16 and len(pcm) == 2 * SAMPLE_RATE
    np.testing.assert_allclose(pcm / 32768.0, reference, atol=2e-4)
    span = decode_span(src, 5.0, 2.0)
    assert span is not None and span.dtype == np.float32 and len(span) == 2 * SAMPLE_RATE
    assert np.corrcoef(span, reference)[0, 1] > 0.999
    assert decode_span(test_media["no_audio"], 0.0, 1.0) is None
