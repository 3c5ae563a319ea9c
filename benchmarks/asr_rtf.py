"""ASR real-time factor and WER on the 10-minute speech fixture: sequential vs chunked+batched.

Side by side, in one run, with one loaded model (tiny.en, int8, CPU unless configured):

- sequential: plain faster-whisper `WhisperModel.transcribe` over the whole audio
  (`AsrModel.transcribe`: beam 5, word timestamps, faster-whisper's defaults otherwise);
- chunked: our path, `split_chunks` -> `transcribe_chunks` (BatchedInferencePipeline) ->
  `merge_chunks` (`AsrModel.transcribe_long`).

RTF is audio seconds per wall second (higher is faster). WER is against the fixture's known
text, and "between" is the WER of the chunked text against the sequential one. The machine's
load average is printed before and after each path: on a shared machine, compare RTFs only
from runs with similar load.

    python -m benchmarks.asr_rtf [--runs 1] [--batch-size 8] [--cpu-threads 0]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from clipforge.media import decode_audio
from models.asr import SAMPLE_RATE, AsrConfig, AsrModel
from models.types import Transcript
from models.wer import wer

_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_test_media.py"


def _media_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_test_media", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}/{five:.2f}/{fifteen:.2f}"


def _timed(run: Callable[[], Transcript], runs: int) -> tuple[Transcript, float, str, str]:
    """Best wall time of `runs` runs, with the load average before the first and after the last."""
    before = _load()
    best = float("inf")
    transcript = None
    for _ in range(runs):
        start = time.perf_counter()
        transcript = run()
        best = min(best, time.perf_counter() - start)
    assert transcript is not None
    return transcript, best, before, _load()


def main() -> None:
    """Run both paths on the 10-minute fixture and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs per path; best time is kept")
    parser.add_argument("--batch-size", type=int, default=8, help="chunks per batched call")
    parser.add_argument("--cpu-threads", type=int, default=0, help="0: CTranslate2's default")
    args = parser.parse_args()

    script = _media_script()
    audio = decode_audio(script.build_all()["speech_long"])
    reference = " ".join(script.long_sentences())
    duration = len(audio) / SAMPLE_RATE
    model = AsrModel(AsrConfig(batch_size=args.batch_size, cpu_threads=args.cpu_threads))
    print(
        f"audio {duration:.1f} s, model {model.info.name} ({model.info.version}), "
        f"batch {args.batch_size}, cpu_threads {args.cpu_threads or 'default'}, "
        f"{os.cpu_count()} CPUs"
    )

    sequential = _timed(lambda: model.transcribe(audio, language="en"), args.runs)
    chunked = _timed(lambda: model.transcribe_long(audio, language="en"), args.runs)

    print(f"{'path':<12}{'wall s':>8}{'RTF':>8}{'WER':>8}{'words':>7}  load before -> after")
    for name, (transcript, wall, before, after) in (
        ("sequential", sequential),
        ("chunked", chunked),
    ):
        print(
            f"{name:<12}{wall:>8.1f}{duration / wall:>8.1f}{wer(reference, transcript.text):>8.3f}"
            f"{len(transcript.words):>7}  {before} -> {after}"
        )
    print(f"WER between chunked and sequential: {wer(sequential[0].text, chunked[0].text):.3f}")


if __name__ == "__main__":
    main()
