"""Transcription real-time factor before and after word-time refinement, in one run.

On the 10-minute speech fixture and the real-voice set (scripts/real_conversations.py), with one
loaded model (tiny.en unless `ASR_MODEL_DIR` says otherwise): the pipeline's ASR steps (cut,
batched decoding, merge) are timed once, and `models.transcription.refined` (the step this
change added) on the same results, so "before" is the same decode without it. RTF is audio
seconds per wall second (higher is faster); the load average is printed with each line.

    python -m benchmarks.word_timing_rtf
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from clipforge.media.track import decode_track
from clipforge.settings import load_settings
from models.asr import SAMPLE_RATE, AsrConfig, AsrModel
from models.transcription import refined

_ROOT = Path(__file__).resolve().parent.parent


def _sources() -> dict[str, Path]:
    from tests.utils.real_conversations import real_set

    long = _ROOT / ".cache" / "test-media" / "v2" / "speech_long.mp4"
    return ({"speech_long": long} if long.exists() else {}) | real_set()


def main() -> None:
    """Print the RTF without and with refinement per recording."""
    model = AsrModel(AsrConfig.from_settings(load_settings()))
    for name, path in _sources().items():
        audio = decode_track(path)
        seconds = len(audio) / SAMPLE_RATE
        started = time.perf_counter()
        chunks = model.split_chunks(audio)
        results = model.transcribe_chunks(chunks, language=model.detect_language(audio)[0])
        model.merge_chunks(results, duration_s=seconds)
        asr_s = time.perf_counter() - started
        started = time.perf_counter()
        refined(chunks, results)
        refine_s = time.perf_counter() - started
        print(
            f"{name} ({seconds:.0f} s, {model.info.name}): before RTF {seconds / asr_s:.1f} "
            f"({asr_s:.2f} s), after RTF {seconds / (asr_s + refine_s):.1f} "
            f"({asr_s + refine_s:.2f} s; refinement {refine_s * 1000:.0f} ms) "
            f"load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
