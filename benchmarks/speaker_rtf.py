"""Transcription real-time factor with and without speaker turns, in one run.

On the 10-minute speech fixture and the real-voice set (scripts/real_conversations.py), one
loaded model: `models.transcription.transcribe_chunks` without the voice encoder (ASR only) and
with it (ASR + speaker turns: the short and long windows, clustering, Viterbi). RTF is audio
seconds per wall second (higher is faster); the load average is printed with each line.

    python -m benchmarks.speaker_rtf [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from clipforge.media.track import decode_track
from models.asr import SAMPLE_RATE, AsrModel
from models.speakers import SpeakerEncoder
from models.transcription import transcribe_chunks

_ROOT = Path(__file__).resolve().parent.parent


def real_sources() -> dict[str, Path]:
    """The 10-minute fixture (if built) and the real-voice set, by name."""
    from tests.utils.real_conversations import real_set

    long = _ROOT / ".cache" / "test-media" / "v2" / "speech_long.mp4"
    return ({"speech_long": long} if long.exists() else {}) | real_set()


def main() -> None:
    """Print ASR-only and ASR + turns RTF per recording."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs per path; best time is kept")
    runs = parser.parse_args().runs
    model, encoder = AsrModel(), SpeakerEncoder()
    for name, path in real_sources().items():
        audio = decode_track(path)
        seconds = len(audio) / SAMPLE_RATE
        line = [f"{name} ({seconds:.0f} s):"]
        for label, enc in (("ASR", None), ("ASR + turns", encoder)):
            best = float("inf")
            for _ in range(runs):
                started = time.perf_counter()
                transcribe_chunks(model, enc, model.split_chunks(audio), duration_s=seconds)
                best = min(best, time.perf_counter() - started)
            line.append(f"{label} RTF {seconds / best:.1f} ({best:.1f} s)")
        print(" ".join(line), f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
