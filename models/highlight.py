"""Highlight scoring: rank sentence-aligned candidate windows of a transcript.

The score (0..100) is the weighted mean of named sub-scores in 0..1 from the text
(`highlight_text`; `highlight_content` for quotable vs procedural speech), word timings, the audio (`highlight_audio`) and sampled frames
(`highlight_visual`); audio and frames are optional and their weights drop out when absent.
All windows share one encoder pass over the transcript's sentences plus the exemplars.
Results are rounded (score to 0.01, sub-scores to 1e-4) so reruns compare equal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.highlight_audio import AudioTimeline, audio_features, audio_timeline
from models.highlight_config import SUBSCORES, ScorerConfig
from models.highlight_content import content_cues, content_features, edge_procedural
from models.highlight_reason import explain
from models.highlight_text import sentence_cues, text_features, timing_features, window_embeddings
from models.highlight_visual import FrameLike, visual_features, visual_timeline
from models.highlight_windows import (
    Sentence,
    Window,
    candidate_windows,
    split_sentences,
    validated_words,
    windows_from_spans,
)
from models.text_encoder import TextEncoder
from models.types import ModelInfo, Transcript

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ScoredWindow:
    """One scored candidate.

    Attributes:
        start: start time in seconds (first word's start).
        end: end time in seconds (last word's end).
        text: the window's words.
        score: 0..100.
        subscores: named sub-scores in 0..1 (only those available for the input).
        reason: one line saying why it scored as it did.
        index: row of this window in `HighlightResult.embeddings`.
    """

    start: float
    end: float
    text: str
    score: float
    subscores: Mapping[str, float]
    reason: str
    index: int


@dataclass(frozen=True, slots=True)
class HighlightResult:
    """All scored windows, best first.

    Attributes:
        windows: scored windows sorted by score (ties: earlier first).
        embeddings: (n_windows, dim) unit text embeddings, row `ScoredWindow.index`.
        sentences: the sentences windows were built from.
        config_version: `ScorerConfig.version` that produced the scores.
        models: the models that produced the scores.
        procedural: per sentence, True for procedural speech (a menu item, a prompt) that an
            editor would cut from a clip's edge; empty when the content signal did not run.
    """

    windows: tuple[ScoredWindow, ...]
    embeddings: npt.NDArray[np.float32]
    sentences: tuple[Sentence, ...]
    config_version: str
    models: tuple[ModelInfo, ...]
    procedural: tuple[bool, ...] = ()


class HighlightScorer:
    """Scores candidate windows; stateless apart from the loaded encoder and exemplar vectors."""

    def __init__(self, encoder: TextEncoder, config: ScorerConfig | None = None) -> None:
        """Keep the encoder and embed the exemplars once (they are the same for every video)."""
        self.encoder = encoder
        self.config = config or ScorerConfig()
        self._hook_emb = encoder.encode(self.config.hook_exemplars)
        self._payoff_emb = encoder.encode(self.config.payoff_exemplars)
        self._quotable_emb = encoder.encode(self.config.quotable_exemplars)
        self._procedural_emb = encoder.encode(self.config.procedural_exemplars)

    def score(
        self,
        transcript: Transcript,
        *,
        audio: npt.NDArray[np.floating] | None = None,
        sample_rate: int = 16_000,
        frames: Iterable[FrameLike] | None = None,
        spans: Sequence[tuple[float, float]] | None = None,
        timeline: AudioTimeline | None = None,
    ) -> HighlightResult:
        """Score every candidate window (or the given `(start, end)` spans).

        The audio's features come from `audio`, or from its `timeline` computed beforehand
        (`audio_timeline_blocks`: a long track read in blocks, never held whole).

        Raises `ValidationFailed` for an empty transcript, words out of order, zero-length
        spans, or unusable audio/frames. A transcript shorter than `min_window_s` gives no
        windows.
        """
        cfg = self.config
        words = validated_words(transcript)
        sentences = split_sentences(transcript, cfg.max_window_s)
        windows = (
            windows_from_spans(sentences, spans, transcript.duration)
            if spans is not None
            else candidate_windows(sentences, cfg.min_window_s, cfg.max_window_s)
        )
        models = (transcript.model, self.encoder.info)
        if not windows:
            empty = np.zeros((0, self.encoder.dim), dtype=np.float32)
            return HighlightResult((), empty, sentences, cfg.version, models)
        # Audio and frames are checked before the encoder runs, so bad input fails fast.
        media = (
            self._audio(windows, audio, sample_rate, timeline),
            self._visual(windows, frames),
        )
        sentence_emb = self.encoder.encode([s.text for s in sentences])
        cues = sentence_cues(sentences, sentence_emb, self._hook_emb, self._payoff_emb)
        subscores, details = text_features(windows, sentences, cues, cfg)
        content = content_cues(sentences, sentence_emb, self._quotable_emb, self._procedural_emb)
        extras = (
            content_features(windows, sentences, content),
            timing_features(windows, words, sentences, cfg),
            *media,
        )
        for extra in extras:
            subscores.update(extra[0])
            details.update(extra[1])
        scores = _combine(subscores, cfg)
        embeddings = window_embeddings(windows, sentence_emb, cues.words)
        scored = _build(windows, sentences, scores, subscores, details)
        procedural = tuple(bool(x) for x in edge_procedural(content))
        return HighlightResult(scored, embeddings, sentences, cfg.version, models, procedural)

    def _audio(
        self,
        windows: Sequence[Window],
        audio: npt.NDArray[np.floating] | None,
        sample_rate: int,
        timeline: AudioTimeline | None = None,
    ) -> tuple[dict[str, Array], dict[str, Array]]:
        if timeline is None:
            if audio is None:
                return {}, {}
            timeline = audio_timeline(audio, sample_rate, self.config.burst_flatness)
        return audio_features(timeline, windows)

    def _visual(
        self, windows: Sequence[Window], frames: Iterable[FrameLike] | None
    ) -> tuple[dict[str, Array], dict[str, Array]]:
        if frames is None:
            return {}, {}
        timeline = visual_timeline(frames, self.config.scene_cut_threshold)
        return visual_features(timeline, windows)


def _combine(subscores: Mapping[str, Array], config: ScorerConfig) -> Array:
    gated = config.content_gate and config.weight("content") > 0
    names = [
        n
        for n in SUBSCORES
        if n in subscores and config.weight(n) > 0 and not (gated and n == "content")
    ]
    if not names:  # only content has a weight
        return np.asarray(100.0 * subscores["content"], dtype=np.float64)
    weights = np.array([config.weight(n) for n in names])
    stacked = np.stack([subscores[n] for n in names], axis=1)
    rest = (stacked @ weights) / weights.sum()
    if not gated:
        return np.asarray(100.0 * rest, dtype=np.float64)
    # A mean of many weak cues hugs the middle (25-40 on real speech); gating by content
    # spreads scores and keeps procedural speech low whatever its pace or loudness.
    share = config.rest_share
    return np.asarray(100.0 * subscores["content"] * (1 - share + share * rest), dtype=np.float64)


def _build(
    windows: Sequence[Window],
    sentences: Sequence[Sentence],
    scores: Array,
    subscores: Mapping[str, Array],
    details: Mapping[str, Array],
) -> tuple[ScoredWindow, ...]:
    names = [n for n in SUBSCORES if n in subscores]
    out: list[ScoredWindow] = []
    for i, window in enumerate(windows):
        values = {n: round(float(subscores[n][i]), 4) for n in names}
        row = {k: float(v[i]) for k, v in details.items()}
        out.append(
            ScoredWindow(
                start=window.start,
                end=window.end,
                text=" ".join(s.text for s in sentences[window.first : window.last + 1]),
                score=round(float(scores[i]), 2),
                subscores=values,
                reason=explain(values, row),
                index=i,
            )
        )
    # Stable sort: equal scores keep time order, so ties break the same way every run.
    return tuple(sorted(out, key=lambda w: (-w.score, w.start, w.end)))
