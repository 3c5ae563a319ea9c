"""Clean clip ends on real speech: a clip never stops while the sentence goes on, and it ends on
a pause (the last frames of the rendered file are quiet) or, where the audio has none, fades out.

The speech is espeak-ng through the project's media script, transcribed by the real ASR; the
windows are real scorer windows over explicit spans (the way a rescored clip arrives), one of
which ends in the middle of a long sentence, right after a comma and its short pause.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from clipforge.media import decode_audio, run_ffmpeg
from clipforge.types import Transcript
from models.asr import AsrModel
from models.clean_ends import FADE_OUT_S, QUIET_DBFS, frame_dbfs
from models.highlight import HighlightScorer
from models.select import SelectOptions, select_clips
from models.text_encoder import load_text_encoder
from pipelines.config import ExportConfig
from pipelines.render.clip_end import fade_out_at
from pipelines.render.clip_files import render_clip_files

pytestmark = pytest.mark.slow  # ASR and a render: ~40 s for the module
_RATE = 16_000
_SENTENCES = [
    "Welcome back to the show about small boats and the open sea.",
    "When we sailed out of the harbour that first cold morning, with the wind behind us and "
    "the gulls above the mast, nobody on board had any idea how far the little boat would "
    "carry us before the sun went down.",
    "It was the best day of the whole summer.",
    "Next week we talk about knots.",
]


@pytest.fixture(scope="module")
def long_sentence(media_script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean-ends") / "boats.mp4"
    media_script._speech_video(out, _SENTENCES, fps=10, channels=1)
    return out


@pytest.fixture(scope="module")
def transcript(long_sentence: Path) -> Transcript:
    return AsrModel().transcribe(decode_audio(long_sentence, _RATE))


def _cues(video: Path) -> list[dict[str, float]]:
    cues: list[dict[str, float]] = json.loads(video.with_suffix(".json").read_text())
    return cues


def _loudest(audio: np.ndarray, start_s: float, end_s: float) -> float:
    """dBFS of the loudest 10 ms frame between `start_s` and `end_s`."""
    return float(frame_dbfs(audio[round(start_s * _RATE) : round(end_s * _RATE)], _RATE).max())


def test_a_window_ending_mid_sentence_is_extended_to_the_sentence_end_on_a_quiet_frame(
    long_sentence: Path, transcript: Transcript, tmp_path: Path
) -> None:
    words = transcript.words
    comma = next(i for i, w in enumerate(words) if w.text.endswith("morning,"))
    assert comma + 10 < len(words) and not words[-1].text.endswith(",")
    # The best window ends right after "morning," while the sentence goes on for ~8 s.
    scorer = HighlightScorer(load_text_encoder())
    audio = decode_audio(long_sentence, _RATE)
    scored = scorer.score(transcript, audio=audio, spans=[(words[0].start, words[comma].end)])
    options = SelectOptions(top_k=1, min_duration_s=4, max_duration_s=30)
    clip = select_clips(scored, transcript, options, audio=audio)[0]
    cues = _cues(long_sentence)
    assert clip.words[-1].text.endswith("down.")  # the sentence's last word
    # All of the sentence's speech is in (espeak pads its cue with silence: from the clip's
    # end to the next sentence nothing is heard), and the clip's last 150 ms are a pause.
    assert cues[1]["start"] < clip.end < cues[2]["start"]
    assert _loudest(audio, clip.end, cues[2]["start"]) < QUIET_DBFS
    assert _loudest(audio, clip.end - 0.15, clip.end) < QUIET_DBFS
    assert _loudest(audio, clip.end - 0.6, clip.end) > -30  # and it is right after the words
    # Without the audio the same clip ends at the same word (padding instead of the pause).
    plain = select_clips(scored, transcript, options)[0]
    assert plain.words[-1] == clip.words[-1]

    # The rendered file ends on a quiet frame too: no fade was needed for that.
    assert fade_out_at(long_sentence, clip.end) == 0.0
    files = render_clip_files(
        long_sentence,
        tmp_path,
        start_s=clip.start,
        end_s=clip.end,
        words=clip.words,
        aspect_ratio="16:9",
        caption_style="karaoke",
        config=ExportConfig(short_side=144, face_tracking=False),
    )
    rendered = decode_audio(files.mp4, _RATE)
    speech = float(frame_dbfs(rendered, _RATE).max())
    assert speech > -20  # the clip does hold loud speech
    last = float(frame_dbfs(rendered[-round(0.12 * _RATE) :], _RATE).max())
    assert last < QUIET_DBFS, f"last 120 ms at {last:.1f} dBFS"


def test_a_sentence_too_long_for_the_clip_ends_at_the_previous_sentence_end(
    long_sentence: Path, transcript: Transcript
) -> None:
    words = transcript.words
    comma = next(i for i, w in enumerate(words) if w.text.endswith("morning,"))
    scorer = HighlightScorer(load_text_encoder())
    audio = decode_audio(long_sentence, _RATE)
    scored = scorer.score(transcript, audio=audio, spans=[(words[0].start, words[comma].end)])
    cues = _cues(long_sentence)
    # Room for the first sentence, not for the second as well.
    limit = (cues[1]["end"] - cues[0]["start"]) - 2.0
    options = SelectOptions(top_k=1, min_duration_s=2, max_duration_s=limit)
    clip = select_clips(scored, transcript, options, audio=audio)[0]
    assert clip.words[-1].text.endswith("sea.")
    assert cues[0]["start"] < clip.end < cues[1]["start"]
    assert _loudest(audio, clip.end, cues[1]["start"]) < QUIET_DBFS
    assert _loudest(audio, clip.end - 0.15, clip.end) < QUIET_DBFS


def test_an_end_without_a_pause_fades_out(tmp_path: Path) -> None:
    # A steady tone: nowhere a pause to end in, so the export fades the last 120 ms out.
    src = tmp_path / "tone.mp4"
    run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc2=s=320x240:r=10:d=6",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=6",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", str(src)],
        timeout_s=120, step="test_media",
    )  # fmt: skip
    assert fade_out_at(src, 4.0) == FADE_OUT_S
    files = render_clip_files(
        src,
        tmp_path,
        start_s=1.0,
        end_s=4.0,
        words=(),
        aspect_ratio="16:9",
        caption_style="karaoke",
        config=ExportConfig(short_side=144, face_tracking=False),
    )
    rendered = decode_audio(files.mp4, _RATE)
    levels = frame_dbfs(rendered, _RATE)
    steady = float(np.median(levels))
    assert steady > -25
    # The last 30 ms are deep into the fade; 150 ms from the end it has not begun.
    assert float(levels[-3:].max()) < steady - 12
    assert abs(float(levels[-16]) - steady) < 3
