"""clipforge.media against real files built by scripts/make_test_media.py (real ffmpeg, PyAV)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from clipforge.errors import MediaError
from clipforge.media import (
    CorruptMedia,
    EmptyMedia,
    NoAudioStream,
    NoVideoStream,
    decode_audio,
    ffmpeg_exe,
    iter_audio,
    probe,
    run_ffmpeg,
    sample_frames,
)

MP4 = "mov,mp4,m4a,3gp,3g2,mj2"


def test_probe_speech_video(test_media: dict[str, Path]) -> None:
    path = test_media["speech_short"]
    info = probe(path)
    cues = json.loads(path.with_suffix(".json").read_text())
    # The video is as long as the speech track: 1 s lead-in, sentences, 1 s tail.
    assert info.duration_s == pytest.approx(cues[-1]["end"] + 1.0, abs=0.1)
    assert 18 < info.duration_s < 30
    assert (info.format_name, info.size_bytes) == (MP4, path.stat().st_size)
    assert (info.has_audio, info.has_video) == (True, True)
    assert (info.width, info.height, info.fps, info.rotation) == (320, 240, 25.0, 0)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.audio_sample_rate, info.audio_channels) == (44100, 2)


def test_probe_long_video(test_media: dict[str, Path]) -> None:
    info = probe(test_media["speech_long"])
    assert 540 < info.duration_s < 660
    assert (info.fps, info.audio_channels, info.width) == (10.0, 1, 320)


def test_probe_no_audio_audio_only_silent(test_media: dict[str, Path]) -> None:
    no_audio = probe(test_media["no_audio"])
    assert (no_audio.has_audio, no_audio.has_video, no_audio.duration_s) == (False, True, 5.0)
    assert (no_audio.audio_codec, no_audio.audio_sample_rate) == (None, None)

    audio_only = probe(test_media["audio_only"])
    assert (audio_only.has_audio, audio_only.has_video) == (True, False)
    assert (audio_only.width, audio_only.height, audio_only.fps) == (None, None, None)
    assert (audio_only.audio_codec, audio_only.audio_sample_rate) == ("aac", 22050)
    assert audio_only.audio_channels == 1

    silent = probe(test_media["silent"])
    assert (silent.has_audio, silent.has_video, silent.duration_s) == (True, True, 5.0)
    assert (silent.audio_sample_rate, silent.audio_channels) == (48000, 2)


def test_probe_reports_display_rotation(test_media: dict[str, Path]) -> None:
    info = probe(test_media["rotated"])
    # Stored 320x240 with a 90 degree display matrix: shown as 240x320 portrait.
    assert (info.rotation, info.width, info.height) == (90, 240, 320)


@pytest.mark.parametrize("name", ["corrupt", "truncated"])
def test_corrupt_bytes_raise_corrupt_media(test_media: dict[str, Path], name: str) -> None:
    for read in (probe, decode_audio, lambda p: list(sample_frames(p, 1.0, 64))):
        with pytest.raises(CorruptMedia, match="corrupt or not a supported media file") as err:
            read(test_media[name])
        assert isinstance(err.value, MediaError) and not err.value.retryable
        assert err.value.http_status == 422
        assert str(test_media[name].parent) not in str(err.value)  # no server paths leak


def test_empty_file_raises_empty_media(test_media: dict[str, Path]) -> None:
    for read in (probe, decode_audio, lambda p: list(sample_frames(p, 1.0, 64))):
        with pytest.raises(EmptyMedia, match=r"empty\.mp4: the file is empty \(0 bytes\)"):
            read(test_media["empty"])


def test_missing_streams_raise_typed_errors(test_media: dict[str, Path]) -> None:
    with pytest.raises(NoAudioStream, match=r"no_audio\.mp4 has no audio stream"):
        decode_audio(test_media["no_audio"])
    with pytest.raises(NoAudioStream):
        next(iter_audio(test_media["no_audio"]))
    with pytest.raises(NoVideoStream, match=r"audio_only\.m4a has no video stream"):
        next(sample_frames(test_media["audio_only"], 1.0, 64))
    assert issubclass(NoAudioStream, MediaError) and issubclass(NoVideoStream, MediaError)


def test_decode_audio_speech_is_16k_mono_float(test_media: dict[str, Path]) -> None:
    path = test_media["speech_short"]
    audio = decode_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) / 16000 == pytest.approx(probe(path).duration_s, abs=0.05)
    assert 0.05 < float(np.abs(audio).max()) <= 1.0
    cues = json.loads(path.with_suffix(".json").read_text())
    # Silence before the first sentence, speech during it.
    lead_in = audio[: int(0.9 * 16000)]
    first = audio[int(cues[0]["start"] * 16000) : int(cues[0]["end"] * 16000)]
    assert np.sqrt(np.mean(lead_in**2)) < 1e-3 < np.sqrt(np.mean(first**2))
    assert len(decode_audio(path, sample_rate=8000)) == pytest.approx(len(audio) / 2, abs=8)


def test_decode_audio_only_and_silent(test_media: dict[str, Path]) -> None:
    speech = decode_audio(test_media["audio_only"])
    assert len(speech) / 16000 == pytest.approx(
        probe(test_media["audio_only"]).duration_s, abs=0.05
    )
    silent = decode_audio(test_media["silent"])
    assert len(silent) / 16000 == pytest.approx(5.0, abs=0.05)
    assert float(np.abs(silent).max()) == 0.0


def test_iter_audio_streams_fixed_blocks(test_media: dict[str, Path]) -> None:
    path = test_media["speech_long"]
    tracemalloc.start()
    total = 0
    sizes = []
    for block in iter_audio(path, block_s=10.0):
        sizes.append(len(block))
        total += len(block)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert all(n == 160_000 for n in sizes[:-1]) and 0 < sizes[-1] <= 160_000
    assert total / 16000 == pytest.approx(probe(path).duration_s, abs=0.1)  # video rounds up
    # The whole decoded file is ~38 MB of float32; streaming holds a couple of blocks only.
    assert peak < 8 * 1024 * 1024, peak
    whole = decode_audio(test_media["speech_short"])
    joined = np.concatenate(list(iter_audio(test_media["speech_short"], block_s=3.0)))
    np.testing.assert_array_equal(whole, joined)


def test_sample_frames_rate_size_and_scene_changes(test_media: dict[str, Path]) -> None:
    frames = list(sample_frames(test_media["speech_short"], fps=1.0, width=160))
    duration = probe(test_media["speech_short"]).duration_s
    assert [f.t for f in frames] == [float(i) for i in range(int(duration) + 1)]
    assert all(f.image.shape == (120, 160, 3) and f.image.dtype == np.uint8 for f in frames)
    # The fixture cuts its colours every 7 s: frames across a cut differ far more than within.
    within = np.abs(frames[1].image.astype(int) - frames[2].image.astype(int)).mean()
    across = np.abs(frames[6].image.astype(int) - frames[7].image.astype(int)).mean()
    assert across > 2 * within
    two_fps = list(sample_frames(test_media["no_audio"], fps=2.0, width=64))
    # Each tick k/2 s takes the first frame at or after it (frames are 0.04 s apart).
    assert [round(f.t - i / 2, 3) for i, f in enumerate(two_fps)] == [0.0, 0.02] * 5


def test_sample_frames_applies_rotation(test_media: dict[str, Path]) -> None:
    frames = list(sample_frames(test_media["rotated"], fps=1.0, width=120))
    assert len(frames) == 5
    assert frames[0].image.shape == (160, 120, 3)  # portrait, as displayed
    upright = next(sample_frames(test_media["no_audio"], fps=1.0, width=160)).image
    np.testing.assert_allclose(
        np.rot90(upright, k=1).astype(float).mean(), frames[0].image.astype(float).mean(), rtol=0.05
    )


def test_ffmpeg_exe_runs() -> None:
    assert Path(ffmpeg_exe()).is_file()
    assert run_ffmpeg(["-version"], timeout_s=30, step="version").startswith(b"ffmpeg version")
