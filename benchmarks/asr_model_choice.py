"""Whisper tiny.en vs base on the real-voice set: word error rate, word starts, CPU cost.

One run, both models, on the recordings of scripts/real_conversations.py, through the pipeline's
own path (`models.transcription.transcribe_chunks`, one CPU thread each so CPU seconds compare):

- WER against the reference text (the call's human transcript `sample.stm` from the pinned
  wheel; for the splices the transcript of each piece; the French pieces, which no English
  model transcribes, are left out of `splice_4p`'s text and its WER is printed apart);
- word starts against the hand-labelled and splice-point onsets (`word_onsets` in each truth
  file), Whisper's own times and refined (`models.word_timing`);
- CPU seconds (process time) and the real-time factor (audio seconds per CPU second).

    python -m benchmarks.asr_model_choice
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zipfile

from clipforge.media.track import decode_track
from models.asr import SAMPLE_RATE, AsrConfig, AsrModel
from models.chunking import merge_chunks
from models.transcription import refined
from models.wer import wer


def reference_texts() -> dict[str, str]:
    """Recording name -> what is said in it (English only)."""
    from tests.utils.real_conversations import OUT, real_set

    real_set()  # builds the set, and the wheel holding the call's transcript
    module = sys.modules["real_conversations"]
    wheel = OUT / "sources" / "wheels" / module.WHEEL_FILE
    with zipfile.ZipFile(wheel) as archive:
        stm = archive.read("pyannote/audio/sample/sample.stm").decode()
    lines = [line.split(maxsplit=5) for line in stm.splitlines() if line.strip()]
    said = [(float(p[3]), float(p[4]), p[5]) for p in lines]

    def span(source: str) -> str:
        lo, hi = (float(x) for x in source.split("-"))
        return " ".join(t for s, e, t in said if s >= lo - 1e-3 and e <= hi + 1e-3)

    texts = {"call_2p": " ".join(t for _, _, t in said)}
    for name, pieces in module.SPLICES.items():
        texts[name] = " ".join(
            span(p.source[5:]) if p.source.startswith("call:") else p.text for p in pieces
        ).strip()
    return texts


def main() -> None:
    """Print one line per model and recording, then the pooled word-start figures."""
    from tests.utils.real_conversations import real_set, truth
    from tests.utils.word_starts import pooled, start_errors

    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    texts = reference_texts()
    # The shipped models by name (base is joined under DATA_DIR/models on first use).
    models = {
        "tiny.en": AsrConfig(model="tiny.en", cpu_threads=1),
        "base": AsrConfig(model="base", cpu_threads=1),
    }
    for label, config in models.items():
        model = AsrModel(config)
        raw, fine, cpu, audio_s = [], [], 0.0, 0.0
        for name, wav in sorted(real_set().items()):
            audio = decode_track(wav)
            seconds = len(audio) / SAMPLE_RATE
            started = time.process_time()
            chunks = model.split_chunks(audio)
            results = model.transcribe_chunks(chunks, language="en")
            moved = refined(chunks, results)
            spent = time.process_time() - started
            cpu, audio_s = cpu + spent, audio_s + seconds
            plain = merge_chunks(results, duration_s=seconds)
            words = merge_chunks(moved, duration_s=seconds).words
            onsets = truth(wav)["word_onsets"]
            raw.append(start_errors(plain.words, onsets))
            fine.append(start_errors(words, onsets))
            hypothesis = " ".join(w.text for w in words)
            print(
                f"{label} {name}: WER {wer(texts[name], hypothesis):.1%}, "
                f"CPU {spent:.1f} s for {seconds:.0f} s (RTF {seconds / spent:.1f})"
            )
        print(f"{label} all: CPU {cpu:.1f} s for {audio_s:.0f} s (RTF {audio_s / cpu:.1f})")
        print(f"{label} word starts, Whisper's: {pooled(raw).summary()}")
        print(f"{label} word starts, refined: {pooled(fine).summary()}")
        del model
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
