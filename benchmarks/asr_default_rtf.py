"""Transcription real-time factor before and after the default ASR model change, in one run.

Before: Whisper tiny.en (the default until base was chosen); after: multilingual Whisper base
(`ASR_MODEL=base`, the default now). Each recording goes through the pipeline's whole
transcription path (`models.transcription.transcribe_chunks`: cut, batched ASR, word-time
refinement, speaker turns) with both models one after the other, so both see the same load.
RTF is audio seconds per wall second, and per CPU second (process time over all threads, which
load moves less); the load average is printed with each line.

    python -m benchmarks.asr_default_rtf [--cpu-threads 0]
"""

from __future__ import annotations

import argparse
import os
import time

from benchmarks.speaker_rtf import real_sources
from clipforge.media.track import decode_track
from models.asr import SAMPLE_RATE, AsrConfig, AsrModel
from models.speakers import SpeakerEncoder
from models.transcription import transcribe_chunks


def main() -> None:
    """One line per recording and model, then the totals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-threads", type=int, default=0, help="0: CTranslate2's default")
    threads = parser.parse_args().cpu_threads
    models = {m: AsrModel(AsrConfig(model=m, cpu_threads=threads)) for m in ("tiny.en", "base")}
    encoder = SpeakerEncoder()
    totals = {m: [0.0, 0.0, 0.0] for m in models}  # audio s, wall s, CPU s
    for name, path in real_sources().items():
        audio = decode_track(path)
        seconds = len(audio) / SAMPLE_RATE
        for label, model in models.items():
            wall, cpu = time.perf_counter(), time.process_time()
            transcribe_chunks(model, encoder, model.split_chunks(audio), duration_s=seconds)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            for i, value in enumerate((seconds, wall, cpu)):
                totals[label][i] += value
            print(
                f"{name} ({seconds:.0f} s) {label}: wall {wall:.1f} s (RTF {seconds / wall:.1f}), "
                f"CPU {cpu:.1f} s (RTF per CPU {seconds / cpu:.1f}), "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    for label, (seconds, wall, cpu) in totals.items():
        print(
            f"all {label}: {seconds:.0f} s of audio, wall {wall:.1f} s (RTF {seconds / wall:.1f}), "
            f"CPU {cpu:.1f} s (RTF per CPU {seconds / cpu:.1f})"
        )
    print(f"{os.cpu_count()} CPUs, load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
