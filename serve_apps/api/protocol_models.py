"""Request and response models of the online model endpoints (`/v1/models/*`).

The same models travel from the ingress to the Serve model deployments through handles, so
the deployments validate nothing twice and the wire format is the documented one. `to_*`
methods convert into the internal types of `models/`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from clipforge.types import Word
from serve_apps.api.protocol import ModelRef, SafeText
from serve_apps.api.protocol import _Request as _V1Request

CaptionFormat = Literal["json", "srt", "vtt"]

MAX_WINDOWS = 50
MAX_WORDS = 5000


class _Request(_V1Request):
    """Strict like the v1 requests (JSON types only, unknown members refused)."""


class TextWindow(_Request):
    """A candidate clip given as text, with optional timings."""

    text: SafeText = Field(min_length=1, max_length=5000, description="Words of the window.")
    start: float | None = Field(
        default=None, ge=0, description="Start in seconds; give both start and end or neither."
    )
    end: float | None = Field(default=None, gt=0, description="End in seconds.")

    @model_validator(mode="after")
    def _timings(self) -> TextWindow:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        if not self.text.split():
            raise ValueError("text has no words")
        return self


class HighlightsRequest(_Request):
    """Score text windows as highlight candidates."""

    windows: list[TextWindow] = Field(
        min_length=1, max_length=MAX_WINDOWS, description="Windows to score."
    )


class ScoredWindowOut(BaseModel):
    """The score of one input window."""

    index: int = Field(description="Position of the window in the request.")
    score: float = Field(description="Highlight score 0..100.")
    sub_scores: dict[str, float] = Field(description="Named sub-scores 0..1.")
    reason: str = Field(description="Why it scored as it did.")


class HighlightsResponse(BaseModel):
    """Scores in request order."""

    windows: list[ScoredWindowOut] = Field(description="One score per input window.")
    config_version: str = Field(description="Scorer configuration version.")
    models: list[ModelRef] = Field(description="Models behind the scores.")


class WordIn(_Request):
    """A timed word."""

    start: float = Field(ge=0, description="Start in seconds.")
    end: float = Field(ge=0, description="End in seconds (>= start).")
    text: SafeText = Field(min_length=1, max_length=200, description="The word.")

    @model_validator(mode="after")
    def _order(self) -> WordIn:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        return self


class CaptionsRequest(_Request):
    """Build caption cues (and a title) from timed words."""

    words: list[WordIn] = Field(
        min_length=1, max_length=MAX_WORDS, description="Words in time order."
    )
    clip_start: float | None = Field(
        default=None, ge=0, description="Clip start; defaults to the first word's start."
    )
    clip_end: float | None = Field(
        default=None, gt=0, description="Clip end; defaults to the last word's end."
    )
    format: CaptionFormat = Field(
        default="json", description="`srt`/`vtt` also return the file text in `file`."
    )
    title: bool = Field(default=True, description="Also suggest a title and hook.")

    @model_validator(mode="after")
    def _span(self) -> CaptionsRequest:
        start, end = self.clip_start, self.clip_end
        if start is not None and end is not None and end <= start:
            raise ValueError("clip_end must be after clip_start")
        return self

    def span(self) -> tuple[float, float]:
        """(clip_start, clip_end) with defaults filled in."""
        start = self.clip_start if self.clip_start is not None else self.words[0].start
        end = self.clip_end if self.clip_end is not None else max(w.end for w in self.words)
        return start, max(end, start + 0.01)

    def to_words(self) -> tuple[Word, ...]:
        """The internal word type."""
        return tuple(Word(start=w.start, end=w.end, text=w.text) for w in self.words)


class CueOut(BaseModel):
    """One caption cue; times relative to the clip start."""

    start: float = Field(description="Seconds from the clip start.")
    end: float = Field(description="Seconds from the clip start.")
    lines: list[str] = Field(description="Text lines as shown (at most two).")


class CaptionsResponse(BaseModel):
    """Cues, the file text when asked for, and the suggested title."""

    cues: list[CueOut] = Field(description="The cues.")
    file: str | None = Field(default=None, description="SRT or VTT text for those formats.")
    title: str | None = Field(default=None, description="Suggested title.")
    hook: str | None = Field(default=None, description="Suggested opening line.")
    models: list[ModelRef] = Field(description="Models used (empty when no title was asked).")
