"""Detect-stage cost per minute of video, today's scorer against the new one, in one run.

Times what a detect actor does for one video once its models are loaded: decode the audio,
sample frames, score every window, select the top K and title them (`ClipFinder.find`). The
video is the real-speech mix of scripts/real_speech.py (about 7.5 minutes) with a plain picture,
built once under .cache/real-speech. The two scorers alternate, `--repeats` times each, so
machine load hits both alike; the medians of wall-clock and of this process's CPU time are
reported in seconds per minute of video.

    python -m benchmarks.detect_cost --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

from clipforge.media.ffmpeg import run_ffmpeg
from clipforge.settings import Settings
from models.clip_finder import ClipFinder, FinderOptions
from models.highlight_config import ScorerConfig

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "real_speech.py"


def _real_speech() -> object:
    spec = importlib.util.spec_from_file_location("real_speech", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_speech"] = module
    spec.loader.exec_module(module)
    return module


def _video(mix: Path) -> Path:
    video = mix.with_suffix(".mp4")
    if not video.exists():
        picture = ["-f", "lavfi", "-i", "color=c=gray:size=320x180:rate=25"]
        codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]
        args = [*picture, "-i", str(mix), "-shortest", *codecs, str(video)]
        run_ffmpeg(args, timeout_s=1800, step="benchmark_media")
    return video


def main() -> None:
    """Print seconds of detect work per minute of video for each scorer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rs = _real_speech()
    mix, _ = rs.build()  # type: ignore[attr-defined]
    transcript = rs.transcript()  # type: ignore[attr-defined]
    video = _video(mix)
    minutes = transcript.duration / 60
    new = ScorerConfig()
    today = ScorerConfig(
        version="v1", weights={k: v for k, v in new.weights.items() if k != "content"}
    )
    finders: dict[str, ClipFinder] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in (("today (v1)", today), ("new (v3)", new)):
            path = Path(tmp) / f"{config.version}.yaml"
            config.save(path)
            finders[name] = ClipFinder(Settings(), FinderOptions(scorer_config=path))
        times: dict[str, list[float]] = {name: [] for name in finders}
        cpu: dict[str, list[float]] = {name: [] for name in finders}
        for finder in finders.values():
            finder.find(transcript, video)  # warm-up: first-call allocations and caches
        for _ in range(args.repeats):
            for name, finder in finders.items():
                begin, begin_cpu = time.perf_counter(), time.process_time()
                finder.find(transcript, video)
                times[name].append(time.perf_counter() - begin)
                # CPU time of this process (ffmpeg children excluded): steadier under load.
                cpu[name].append(time.process_time() - begin_cpu)
    print(f"video: {transcript.duration:.0f} s; repeats: {args.repeats}")
    for name, values in times.items():
        wall = statistics.median(values)
        own = statistics.median(cpu[name])
        print(
            f"{name}: wall {wall:.2f} s per video = {wall / minutes:.3f} s per minute of video; "
            f"CPU {own:.2f} s = {own / minutes:.3f} s per minute"
        )


if __name__ == "__main__":
    main()
