"""`ScorerConfig`: every tunable of highlight scoring, versioned and stored as YAML or JSON.

A notebook tunes weights and exemplars and saves a new version; the detect stage loads it and
records `version` on every clip, so a clip can always be traced to the settings that ranked it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from clipforge.errors import ConfigError

#: Sub-scores from the words alone; always available.
TEXT_SUBSCORES = ("hook", "payoff", "standalone", "emotion", "question", "numbers")
#: Sub-scores from word timings; always available.
TIMING_SUBSCORES = ("speech_rate", "flow")
#: Sub-scores from the audio samples; only when audio is given.
AUDIO_SUBSCORES = ("energy", "reactions")
#: Sub-scores from sampled frames; only when frames are given.
VISUAL_SUBSCORES = ("scene_cuts", "motion")
SUBSCORES = TEXT_SUBSCORES + TIMING_SUBSCORES + AUDIO_SUBSCORES + VISUAL_SUBSCORES

_DEFAULT_WEIGHTS = {
    "hook": 3.0,
    "payoff": 1.0,
    "standalone": 1.5,
    "emotion": 1.0,
    "question": 1.0,
    "numbers": 0.75,
    "speech_rate": 1.0,
    "flow": 0.75,
    "energy": 1.0,
    "reactions": 0.75,
    "scene_cuts": 0.5,
    "motion": 0.5,
}

_HOOK_EXEMPLARS = (
    "Here's the secret nobody tells you.",
    "What if I told you everything you know about this is wrong?",
    "The biggest mistake people make is this.",
    "This one thing changed my life forever.",
    "You won't believe what happened next.",
    "Nobody talks about this, but it matters more than anything.",
    "Why do most people fail at this?",
    "I lost everything in a single day.",
)

_PAYOFF_EXEMPLARS = (
    "And that's why it works.",
    "So the lesson is simple.",
    "That's how we doubled our revenue.",
    "And that changed everything for us.",
    "The answer turned out to be surprisingly simple.",
    "So if you remember one thing, remember this.",
)

_DANGLING_OPENERS = (
    "and",
    "but",
    "so",
    "or",
    "because",
    "which",
    "that",
    "this",
    "these",
    "those",
    "it",
    "it's",
    "he",
    "she",
    "they",
    "them",
    "also",
    "then",
    "yeah",
    "um",
    "uh",
)


class ScorerConfig(BaseModel):
    """Options of `HighlightScorer`.

    Attributes:
        version: recorded on every clip; bump it whenever anything below changes.
        min_window_s: shortest candidate window in seconds.
        max_window_s: longest candidate window in seconds.
        weights: weight of each named sub-score; the score is their weighted mean over the
            sub-scores available for the input (audio and frames are optional).
        hook_exemplars: sentences a strong opening resembles.
        payoff_exemplars: sentences a satisfying ending resembles.
        dangling_openers: first words that point back to earlier context.
        similarity_range: cosine similarities mapped linearly onto 0..1 for hook/payoff.
        speech_rate_range: words per second mapped onto 0..1.
        pause_s: a gap between words at least this long counts as a pause.
        burst_flatness: spectral flatness above which a loud frame is noise-like (laughter,
            applause) rather than voiced speech.
        scene_cut_threshold: colour-histogram distance (0..1) above which two frames are a cut.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(default="highlight-v1", min_length=1)
    min_window_s: float = Field(default=15.0, gt=0)
    max_window_s: float = Field(default=60.0, gt=0)
    weights: dict[str, float] = Field(default_factory=lambda: dict(_DEFAULT_WEIGHTS))
    hook_exemplars: tuple[str, ...] = _HOOK_EXEMPLARS
    payoff_exemplars: tuple[str, ...] = _PAYOFF_EXEMPLARS
    dangling_openers: tuple[str, ...] = _DANGLING_OPENERS
    similarity_range: tuple[float, float] = (0.15, 0.6)
    speech_rate_range: tuple[float, float] = (1.8, 3.6)
    pause_s: float = Field(default=0.7, gt=0)
    burst_flatness: float = Field(default=0.3, gt=0, lt=1)
    scene_cut_threshold: float = Field(default=0.4, gt=0, lt=1)

    @model_validator(mode="after")
    def _check(self) -> ScorerConfig:
        if self.min_window_s >= self.max_window_s:
            raise ValueError("min_window_s must be shorter than max_window_s")
        unknown = sorted(set(self.weights) - set(SUBSCORES))
        if unknown:
            raise ValueError(f"unknown sub-scores in weights: {unknown}; known: {list(SUBSCORES)}")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        if not self.hook_exemplars or not self.payoff_exemplars:
            raise ValueError("hook_exemplars and payoff_exemplars must not be empty")
        for low, high in (self.similarity_range, self.speech_rate_range):
            if low >= high:
                raise ValueError("ranges must be (low, high) with low < high")
        return self

    def weight(self, name: str) -> float:
        """Weight of sub-score `name` (0 when the config leaves it out)."""
        return self.weights.get(name, 0.0)

    def save(self, path: Path) -> None:
        """Write to `path` as YAML (`.yaml`/`.yml`) or JSON (anything else)."""
        data = self.model_dump(mode="json")
        if path.suffix.lower() in (".yaml", ".yml"):
            path.write_text(yaml.safe_dump(data, sort_keys=True, allow_unicode=True))
        else:
            path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: Path) -> ScorerConfig:
        """Read a config saved by `save`; raises `ConfigError` naming the bad field."""
        try:
            text = path.read_text()
            raw: Any = (
                yaml.safe_load(text)
                if path.suffix.lower() in (".yaml", ".yml")
                else json.loads(text)
            )
        except (OSError, yaml.YAMLError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read scorer config {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"scorer config {path} must be a mapping")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"invalid scorer config {path}: {exc}") from exc
