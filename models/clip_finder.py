"""Transcript (+ media) -> titled clips: score windows, select the top K, title them.

This is the whole of highlight detection for one video, shared by the detect stage
(`pipelines.stages.detect`, inside a Ray actor) and the notebook API (`pipelines.local.notebook`, in the
caller's process), so both give the same clips for the same transcript, media and settings.
Plain Python: no Ray, no database, no object store (media is a local file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from clipforge.media import decode_audio, sample_frames
from clipforge.settings import Settings
from models.caption_titles import ClipTitle, ExtractiveTitler, Seq2SeqTitler, load_titler
from models.highlight import HighlightResult, HighlightScorer
from models.highlight_config import ScorerConfig
from models.highlight_reason import has_strong_signal, weak_clip_reason
from models.select import Clip, SelectOptions, select_clips
from models.text_encoder import EncoderOptions, load_text_encoder
from models.types import Transcript


def scorer_version(config_version: str, encoder_version: str) -> str:
    """The version recorded on clips: the scorer settings plus the encoder weights."""
    return f"{config_version}+{encoder_version}"


@dataclass(frozen=True, slots=True)
class FinderOptions:
    """How clips are found (the detect stage fills these from `DetectConfig`).

    Attributes:
        top_k: at most this many clips.
        min_clip_s / max_clip_s: clip duration limits.
        frames_fps / frames_width: frame sampling for the visual sub-scores.
        scorer_config: a saved `ScorerConfig` (YAML); None means the defaults.
        encoder_threads: the text encoder's threads; None leaves ONNX Runtime's default.
    """

    top_k: int = 5
    min_clip_s: float = 15.0
    max_clip_s: float = 60.0
    frames_fps: float = 1.0
    frames_width: int = 160
    scorer_config: Path | None = None
    encoder_threads: int | None = None


@dataclass(frozen=True, slots=True)
class Detection:
    """Clips of one video, best first, with their titles and every scored window.

    Attributes:
        clips: the chosen clips (may be empty when no window fits the duration limits).
        titles: one title per clip, same order.
        result: all scored candidate windows.
    """

    clips: tuple[Clip, ...]
    titles: tuple[ClipTitle, ...]
    result: HighlightResult

    def timeline(self, max_points: int | None = None) -> list[list[float]]:
        """`[start, end, score]` per window in time order, thinned to about `max_points`."""
        points = sorted([round(w.start, 2), round(w.end, 2), w.score] for w in self.result.windows)
        step = max(1, len(points) // max_points) if max_points else 1
        return points[::step]


def strong_first(clips: Sequence[Clip], top_k: int) -> tuple[Clip, ...]:
    """The chosen clips with those that have a strong signal first (ranks renumbered); a clip
    without one is kept only to fill the top K, and its reason says so.

    Selection takes windows by score, so a weak clip is only there when fewer than K strong
    ones were found; it stays visible (the user asked for K) but is not exported automatically.
    """
    strong = [c for c in clips if has_strong_signal(c.subscores)]
    weak = [
        replace(c, reason=weak_clip_reason(len(strong), top_k))
        for c in clips
        if not has_strong_signal(c.subscores)
    ]
    return tuple(replace(c, rank=i + 1) for i, c in enumerate([*strong, *weak]))


class ClipFinder:
    """Loaded encoder, scorer and titler; load once per process, call `find` per video."""

    def __init__(self, settings: Settings, options: FinderOptions | None = None) -> None:
        """Load the text encoder (cached per process) and the scorer config named by `options`."""
        self.options = options or FinderOptions()
        encoder = load_text_encoder(
            settings, EncoderOptions(num_threads=self.options.encoder_threads)
        )
        path = self.options.scorer_config
        config = ScorerConfig.load(path) if path else ScorerConfig()
        self.scorer = HighlightScorer(encoder, config)
        self.titler: ExtractiveTitler | Seq2SeqTitler = load_titler(settings, encoder)
        self.select_options = SelectOptions(
            top_k=self.options.top_k,
            min_duration_s=self.options.min_clip_s,
            max_duration_s=self.options.max_clip_s,
        )
        self.version = scorer_version(config.version, encoder.info.version)

    def score(self, transcript: Transcript, media: Path | None = None) -> HighlightResult:
        """Score every candidate window; with `media`, audio and frame sub-scores count too."""
        return self._score(transcript, media)[0]

    def _score(
        self, transcript: Transcript, media: Path | None
    ) -> tuple[HighlightResult, npt.NDArray[np.float32] | None]:
        if media is None:
            return self.scorer.score(transcript), None
        audio = decode_audio(media)
        frames = list(sample_frames(media, self.options.frames_fps, self.options.frames_width))
        return self.scorer.score(transcript, audio=audio, frames=frames), audio

    def find(self, transcript: Transcript, media: Path | None = None) -> Detection:
        """Score, select the top-K non-overlapping clips (edges in the audio's pauses, with
        `media`), strong ones first, and title them."""
        result, audio = self._score(transcript, media)
        chosen = strong_first(
            select_clips(result, transcript, self.select_options, audio=audio), self.options.top_k
        )
        titles = self.titler.titles([c.words for c in chosen]) if chosen else ()
        return Detection(clips=chosen, titles=titles, result=result)
