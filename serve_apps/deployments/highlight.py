"""Online highlight scoring: `models.highlight.HighlightScorer` behind a `Batcher`.

The windows of every request in a batch are laid out one after another on a synthetic
timeline (each window its own segment, separated by a pause) and scored as explicit spans in
one `score()` call, so the whole batch shares one text-encoder pass. Every sub-score is
computed inside its window's span, so neighbours on the timeline do not influence each other.
Windows without timings are timed at a neutral speaking rate.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ray import serve

from clipforge.types import ModelInfo, Segment, Transcript, Word
from serve_apps.api.protocol import ModelRef
from serve_apps.api.protocol_models import HighlightsRequest, HighlightsResponse, ScoredWindowOut
from serve_apps.deployments.batching import Batcher, BatchStats, thread_count

if TYPE_CHECKING:
    from models.highlight import HighlightScorer

NEUTRAL_WORDS_PER_S = 2.5
_GAP_S = 2.0
_TEXT_INPUT = ModelInfo(name="text-input", version="n/a", sha256="")


def layout(
    requests: list[HighlightsRequest],
) -> tuple[Transcript, list[tuple[float, float]], list[tuple[int, int]]]:
    """The synthetic transcript, one span per window, and (request, window) of each span."""
    t = 0.0
    segments: list[Segment] = []
    spans: list[tuple[float, float]] = []
    owners: list[tuple[int, int]] = []
    for r, request in enumerate(requests):
        for w, window in enumerate(request.windows):
            tokens = window.text.split()
            if window.start is not None and window.end is not None:
                duration = window.end - window.start
            else:
                duration = len(tokens) / NEUTRAL_WORDS_PER_S
            step = duration / len(tokens)
            words = tuple(
                Word(start=t + i * step, end=t + (i + 0.9) * step, text=token)
                for i, token in enumerate(tokens)
            )
            segments.append(Segment(start=t, end=t + duration, text=window.text, words=words))
            spans.append((t, words[-1].end))
            owners.append((r, w))
            t += duration + _GAP_S
    return Transcript("en", t, tuple(segments), _TEXT_INPUT), spans, owners


def score_requests(
    scorer: HighlightScorer, requests: list[HighlightsRequest]
) -> list[HighlightsResponse]:
    """Every window of every request in one `score()` pass; one response per request."""
    transcript, spans, owners = layout(requests)
    result = scorer.score(transcript, spans=spans)
    per_request: list[list[ScoredWindowOut]] = [[] for _ in requests]
    for scored in result.windows:
        r, w = owners[scored.index]
        per_request[r].append(
            ScoredWindowOut(
                index=w,
                score=scored.score,
                sub_scores=dict(scored.subscores),
                reason=scored.reason,
            )
        )
    encoder = scorer.encoder.info
    models = [ModelRef(name=encoder.name, version=encoder.version)]
    return [
        HighlightsResponse(
            windows=sorted(windows, key=lambda s: s.index),
            config_version=result.config_version,
            models=models,
        )
        for windows in per_request
    ]


@serve.deployment(name="HighlightScorer", ray_actor_options={"num_cpus": 0.25})
class HighlightDeployment:
    """One text encoder and scorer per replica."""

    def __init__(self, settings: dict[str, Any], num_cpus: float = 0.25) -> None:
        """Load the encoder (heavy imports stay inside the replica)."""
        from clipforge.observability.setup import init_observability
        from clipforge.settings import load_settings
        from models.highlight import HighlightScorer
        from models.text_encoder import EncoderOptions, load_text_encoder

        loaded = load_settings(**settings)
        init_observability(loaded, "serve-highlight")
        options = EncoderOptions(num_threads=thread_count(num_cpus))
        encoder = load_text_encoder(loaded, options)
        self.scorer = HighlightScorer(encoder)
        self.stats_ = BatchStats("highlight")
        self.batcher: Batcher[HighlightsRequest, HighlightsResponse] = Batcher(
            self.score_batch, self.stats_
        )

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply `max_batch_size` / `batch_wait_timeout_s` from the deployment's user_config."""
        self.batcher.configure(user_config)

    async def score(self, request: HighlightsRequest) -> HighlightsResponse:
        """Score one request's windows (batched with concurrent requests)."""
        return await self.batcher.submit(request)

    async def score_batch(self, requests: list[HighlightsRequest]) -> list[HighlightsResponse]:
        """Score every window of every request in one pass."""
        return await asyncio.to_thread(score_requests, self.scorer, requests)

    def stats(self) -> dict[str, int]:
        """Batch sizes seen by this replica."""
        return self.stats_.snapshot()
