"""What batching can give ASR on this machine: the ASR deployment's decode path, called in one
process (no Serve, no HTTP), on batches of 1, 2, 4 and 8 ten-second clips.

    python -m benchmarks.asr_batch_gain [--threads 2] [--sizes 1 8 2 4] [--reps 3]

For each batch it prints wall time and CPU time (every thread of this process, CTranslate2's
included). On a machine whose cores are saturated (the 16-client level of
`benchmarks.serve_vs_plain`), throughput is cores / (CPU seconds per audio second), so the
best a batching server can gain over one that decodes requests one at a time is the ratio of
the CPU seconds per audio second at batch 1 to that at the server's batch size. CPU time moves
far less with other work on a shared machine than wall time does, which is why it is the
figure to read here. Sizes run interleaved, `--reps` times, after one warm-up batch of one.
"""

from __future__ import annotations

import argparse
import io
import os
import time
import wave
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import numpy as np

from benchmarks.serve_vs_plain import CLIP_S, wav_clips
from clipforge.settings import load_settings


class _Replica:
    """The attributes the ASR deployment's batch function reads (`model`, `speakers`)."""

    def __init__(self, threads: int) -> None:
        from models.asr import AsrConfig, AsrModel
        from models.speakers import SpeakerEncoder

        config = replace(AsrConfig.from_settings(load_settings()), cpu_threads=threads)
        self.model = AsrModel(config)
        self.speakers = SpeakerEncoder()


def _samples(clip: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(clip)) as source:
        pcm = np.frombuffer(source.readframes(source.getnframes()), "<i2")
    return pcm.astype(np.float32) / 32768


def main(argv: Sequence[str] | None = None) -> None:
    """Time the deployment's `_run` on each batch size; print one line a batch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 CPU threads.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 2, 4])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)

    from serve_apps.deployments.asr import AsrDeployment

    # The undecorated class's method: the very decode path the replicas run.
    run = cast(Any, AsrDeployment).func_or_class._run
    replica = _Replica(args.threads)
    clips = [_samples(clip) for clip in wav_clips(8)]
    run(replica, [(clips[0], "en")])
    print(f"threads {args.threads}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')}")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    per_size: dict[int, list[float]] = {n: [] for n in args.sizes}
    for rep in range(args.reps):
        for n in args.sizes:
            items = [(clips[i % len(clips)], "en") for i in range(n)]
            wall, cpu = time.perf_counter(), time.process_time()
            run(replica, items)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            audio_s = n * CLIP_S
            per_size[n].append(cpu / audio_s)
            print(
                f"rep {rep} batch {n}: wall {wall:.2f} s ({audio_s / wall:.2f} audio s per s), "
                f"cpu {cpu:.2f} s ({cpu / audio_s:.3f} cpu s per audio s)",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    smallest = min(per_size)
    base = float(np.mean(per_size[smallest]))
    for n, values in sorted(per_size.items()):
        mean = float(np.mean(values))
        print(f"batch {n}: {mean:.3f} cpu s per audio s, {base / mean:.2f}x batch {smallest}'s")


if __name__ == "__main__":
    main()
