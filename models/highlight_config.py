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
TEXT_SUBSCORES = (
    "content",
    "hook",
    "payoff",
    "standalone",
    "emotion",
    "question",
    "numbers",
)
#: Sub-scores from word timings; always available.
TIMING_SUBSCORES = ("speech_rate", "flow")
#: Sub-scores from the audio samples; only when audio is given.
AUDIO_SUBSCORES = ("energy", "reactions")
#: Sub-scores from sampled frames; only when frames are given.
VISUAL_SUBSCORES = ("scene_cuts", "motion")
SUBSCORES = TEXT_SUBSCORES + TIMING_SUBSCORES + AUDIO_SUBSCORES + VISUAL_SUBSCORES

_DEFAULT_WEIGHTS = {
    # Content (quotable vs procedural, `highlight_content`) weighs about as much as all the
    # other signals together: it is what an editor picks on; the rest break ties among the
    # quotable windows and lift a moment the room reacted to.
    "content": 10.0,
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

# Prototypes of the two kinds of speech the content sub-score separates. Written for this
# purpose (none is taken from the evaluation recordings, so the evaluation stays honest).
_QUOTABLE_EXEMPLARS = (
    "The biggest lesson I learned is that nobody cares about your plan until it works.",
    "Honestly, I think most advice about this is wrong.",
    "We almost gave up, and then everything changed in one afternoon.",
    "If you remember one thing today, remember that small habits beat big goals.",
    "I never expected that the hardest part would be saying no.",
    "The truth is, failure taught me more than any success did.",
    "That was the moment I realised we had been asking the wrong question.",
    "People think it is about talent, but it is really about patience.",
    "My grandmother used to say that you cannot borrow courage.",
    "It sounds crazy, but the simplest idea turned out to be the right one.",
)
_PROCEDURAL_EXEMPLARS = (
    "To hear your messages, press one. To change your settings, press two.",
    "Please enter your account number followed by the pound key.",
    "Your call is important to us. Please stay on the line.",
    "For sales, dial extension four. For an operator, press zero.",
    "Please leave a message after the tone.",
    "Select the file menu, then click save and choose a folder.",
    "Testing, one, two, three, four, five.",
    "This recording is provided for informational purposes only and may be monitored.",
    "The next item on the list is item number seven, followed by item number eight.",
    "Thank you for calling. All of our agents are currently busy.",
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
        quotable_exemplars: quotable statements (claim, advice, story turn, punchline).
        procedural_exemplars: procedural speech (menus, prompts, instructions, lists).
        dangling_openers: first words that point back to earlier context.
        similarity_range: cosine similarities mapped linearly onto 0..1 for hook/payoff.
        speech_rate_range: words per second mapped onto 0..1.
        pause_s: a gap between words at least this long counts as a pause.
        burst_flatness: spectral flatness above which a loud frame is noise-like (laughter,
            applause) rather than voiced speech.
        scene_cut_threshold: colour-histogram distance (0..1) above which two frames are a cut.
        content_gate: when on (and `content` has a weight), the score is `content` times
            `(1 - rest_share) + rest_share * rest`, where `rest` is the weighted mean of the other
            sub-scores: procedural speech stays low however fast or loud it is, and the other
            signals order the quotable windows. Off: `content` is one term of the weighted mean.
        rest_share: how much of the score the other sub-scores decide under the gate (0..1).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(default="highlight-v3", min_length=1)
    min_window_s: float = Field(default=15.0, gt=0)
    max_window_s: float = Field(default=60.0, gt=0)
    weights: dict[str, float] = Field(default_factory=lambda: dict(_DEFAULT_WEIGHTS))
    hook_exemplars: tuple[str, ...] = _HOOK_EXEMPLARS
    payoff_exemplars: tuple[str, ...] = _PAYOFF_EXEMPLARS
    quotable_exemplars: tuple[str, ...] = _QUOTABLE_EXEMPLARS
    procedural_exemplars: tuple[str, ...] = _PROCEDURAL_EXEMPLARS
    dangling_openers: tuple[str, ...] = _DANGLING_OPENERS
    similarity_range: tuple[float, float] = (0.15, 0.6)
    speech_rate_range: tuple[float, float] = (1.8, 3.6)
    pause_s: float = Field(default=0.7, gt=0)
    burst_flatness: float = Field(default=0.3, gt=0, lt=1)
    scene_cut_threshold: float = Field(default=0.4, gt=0, lt=1)
    content_gate: bool = True
    rest_share: float = Field(default=0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> ScorerConfig:
        if self.min_window_s >= self.max_window_s:
            raise ValueError("min_window_s must be shorter than max_window_s")
        unknown = sorted(set(self.weights) - set(SUBSCORES))
        if unknown:
            raise ValueError(f"unknown sub-scores in weights: {unknown}; known: {list(SUBSCORES)}")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        exemplars = (
            self.hook_exemplars,
            self.payoff_exemplars,
            self.quotable_exemplars,
            self.procedural_exemplars,
        )
        if not all(exemplars):
            raise ValueError("exemplar lists must not be empty")
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
