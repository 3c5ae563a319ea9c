"""Online speech recognition: `models.asr.AsrModel` behind a `Batcher` (see batching.py), with
speaker turns.

Each request's audio (decoded by the ingress through `clipforge.media.track`, as import does) is
cut at silences into chunks; the chunks of every request in a batch go through one batched
faster-whisper call and are merged back per request, and every word gets its speaker id from
the voice encoder, by the same rule as `clipforge.transcribe()` and the worker
(`models.transcription`). Requests in different languages (multilingual weights) are batched
per language; the language is detected on a request's first chunk unless given.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import replace
from typing import Any

import numpy as np
from ray import serve

from clipforge.types import Transcript
from serve_apps.deployments.batching import Batcher, BatchStats, thread_count

AsrItem = tuple[np.ndarray, str | None]


@serve.deployment(name="AsrModel", ray_actor_options={"num_cpus": 0.5})
class AsrDeployment:
    """One Whisper model per replica."""

    def __init__(self, settings: dict[str, Any], num_cpus: float = 0.5) -> None:
        """Load the weights (heavy imports stay inside the replica)."""
        from clipforge.observability.setup import init_observability
        from clipforge.settings import load_settings
        from models.asr import AsrConfig, AsrModel
        from models.speakers import SpeakerEncoder

        loaded = load_settings(**settings)
        init_observability(loaded, "serve-asr")
        # ASR_MODEL (base by default), ASR_MODEL_DIR, DATA_DIR, device and compute type.
        config = replace(AsrConfig.from_settings(loaded), cpu_threads=thread_count(num_cpus))
        self.model = AsrModel(config)
        self.speakers = SpeakerEncoder(data_dir=loaded.data_dir)
        self.stats_ = BatchStats("asr")
        self.batcher: Batcher[AsrItem, Transcript] = Batcher(self.transcribe_batch, self.stats_)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply `max_batch_size` / `batch_wait_timeout_s` from the deployment's user_config."""
        self.batcher.configure(user_config)

    async def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        """Transcribe 16 kHz mono float32 audio (batched with concurrent requests)."""
        return await self.batcher.submit((audio, language))

    async def transcribe_batch(self, items: list[AsrItem]) -> list[Transcript]:
        """One batched recogniser pass over the chunks of all `items`."""
        # CPU-bound: run off the event loop so the replica keeps answering health checks.
        return await asyncio.to_thread(self._run, items)

    def _run(self, items: list[AsrItem]) -> list[Transcript]:
        from models.speakers import assign_speakers
        from models.transcription import chunk_windows, refined

        model = self.model
        cut = [model.split_chunks(audio) for audio, _ in items]
        by_language: dict[str, list[int]] = defaultdict(list)
        for i, (_, language) in enumerate(items):
            if language is None:
                first = cut[i][0].audio if cut[i] else items[i][0]
                language = model.detect_language(first)[0]
            by_language[language].append(i)
        out: list[Transcript | None] = [None] * len(items)
        for language, members in by_language.items():
            chunks = [(i, c) for i in members for c in cut[i]]
            results = model.transcribe_chunks([c for _, c in chunks], language=language)
            for i in members:
                mine = [(c, r) for (owner, c), r in zip(chunks, results, strict=True) if owner == i]
                transcript = model.merge_chunks(
                    refined([c for c, _ in mine], [r for _, r in mine]),
                    duration_s=len(items[i][0]) / 16000,
                )
                windows = [w for c, r in mine for w in chunk_windows(self.speakers, c, r)]
                out[i] = assign_speakers(transcript, windows)
        return [t for t in out if t is not None]

    def stats(self) -> dict[str, int]:
        """Batch sizes seen by this replica."""
        return self.stats_.snapshot()
