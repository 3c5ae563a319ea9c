"""Online captions: cue layout (`models.caption`) and titles (`models.caption_titles`).

Cue building is cheap and validates the request, so it runs per request before batching;
only the titles, which need the text encoder, are batched: one encoder pass titles every
clip of the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ray import serve

from clipforge.types import Word
from serve_apps.api.protocol import ModelRef
from serve_apps.api.protocol_models import CaptionsRequest, CaptionsResponse, CueOut
from serve_apps.deployments.batching import BatchStats, apply_batch_config, thread_count


@serve.deployment(name="CaptionModel", ray_actor_options={"num_cpus": 0.25})
class CaptionDeployment:
    """Cue builder plus a titler (extractive, or seq2seq when TITLE_MODEL_DIR is set)."""

    def __init__(self, settings: dict[str, Any], num_cpus: float = 0.25) -> None:
        """Load the titler's models (heavy imports stay inside the replica)."""
        from clipforge.observability.setup import init_observability
        from clipforge.settings import load_settings
        from models.caption_titles import load_titler
        from models.text_encoder import EncoderOptions, load_text_encoder

        loaded = load_settings(**settings)
        init_observability(loaded, "serve-caption")
        encoder = load_text_encoder(loaded, EncoderOptions(num_threads=thread_count(num_cpus)))
        self.titler = load_titler(loaded, encoder)
        self.stats_ = BatchStats("caption")

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply `max_batch_size` / `batch_wait_timeout_s` from the deployment's user_config."""
        apply_batch_config(self.title_batch, user_config)

    async def captions(self, request: CaptionsRequest) -> CaptionsResponse:
        """Cues (+ SRT/VTT text) now; the title through the batch."""
        from models.caption import build_cues
        from models.caption_formats import to_srt, to_vtt

        start, end = request.span()
        cues = build_cues(request.to_words(), start, end)
        text = {"srt": to_srt, "vtt": to_vtt}.get(request.format)
        out = CaptionsResponse(
            cues=[CueOut(start=c.start, end=c.end, lines=list(c.lines)) for c in cues],
            file=text(cues) if text else None,
            models=[],
        )
        clip_words = tuple(w for c in cues for w in c.words)
        if not request.title or not clip_words:
            return out
        title, hook, models = await self.title_batch(clip_words)
        return out.model_copy(update={"title": title, "hook": hook, "models": models})

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.02)
    async def title_batch(
        self, clips: list[Sequence[Word]]
    ) -> list[tuple[str, str, list[ModelRef]]]:
        """Title and hook of every clip in one encoder pass."""
        self.stats_.record(len(clips))
        titles = await asyncio.to_thread(self.titler.titles, clips)
        return [
            (t.title, t.hook, [ModelRef(name=m.name, version=m.version) for m in t.models])
            for t in titles
        ]

    def stats(self) -> dict[str, int]:
        """Batch sizes seen by this replica."""
        return self.stats_.snapshot()
