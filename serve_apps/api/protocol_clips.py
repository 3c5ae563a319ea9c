"""Request and response models of clip edits: bounds, caption corrections, clips made by hand.

Times are seconds from the start of the video, like `ClipOut`'s. Words are named by their
index in the video's transcript (`ClipWordOut.index`), which stays the same when the clip's
bounds move.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from serve_apps.api.protocol import SafeStr, _Request

# Far beyond any video the import stage accepts; keeps infinities and absurd values out.
MAX_TIME_S = 1_000_000.0
# A clip is a short excerpt; a span longer than this is a mistake, not a clip.
MAX_CLIP_S = 600.0
MAX_CORRECTIONS = 2000
MAX_WORD_INDEX = 10_000_000

Seconds = Annotated[float, Field(ge=0, le=MAX_TIME_S)]


def _check_span(start_s: float | None, end_s: float | None) -> None:
    if start_s is not None and end_s is not None:
        if end_s <= start_s:
            raise ValueError("end_s must be after start_s")
        if end_s - start_s > MAX_CLIP_S:
            raise ValueError(f"a clip is at most {MAX_CLIP_S:.0f} s long")


class EditClipRequest(_Request):
    """New bounds for a clip (either or both); they are snapped like detection's."""

    start_s: Seconds | None = Field(
        default=None, description="Wanted start in seconds; moved to the nearest word edge."
    )
    end_s: Seconds | None = Field(
        default=None, description="Wanted end in seconds (within the video); moved likewise."
    )

    @model_validator(mode="after")
    def _some_bound(self) -> EditClipRequest:
        if self.start_s is None and self.end_s is None:
            raise ValueError("give start_s, end_s or both")
        _check_span(self.start_s, self.end_s)
        return self


class CreateClipRequest(_Request):
    """A clip of a chosen span of a ready video, for a moment detection missed."""

    # Not strict: JSON has no UUID type, the id arrives as a string.
    video_id: Annotated[uuid.UUID, Field(strict=False)] = Field(description="The video.")
    start_s: Seconds = Field(description="Wanted start in seconds; moved to a word edge.")
    end_s: Seconds = Field(description="Wanted end in seconds (within the video).")
    title: SafeStr | None = Field(
        default=None,
        min_length=1,
        max_length=300,
        description="Title; by default the clip's first sentence.",
    )

    @model_validator(mode="after")
    def _span(self) -> CreateClipRequest:
        _check_span(self.start_s, self.end_s)
        return self


class WordCorrection(_Request):
    """The text to show for one word of the clip."""

    index: int = Field(ge=0, le=MAX_WORD_INDEX, description="The word's `index`.")
    text: SafeStr = Field(
        min_length=1, max_length=200, description="Text shown in the captions instead."
    )

    @model_validator(mode="after")
    def _not_blank(self) -> WordCorrection:
        if not self.text.strip():
            raise ValueError("text must not be blank")
        return self


class PutWordsRequest(_Request):
    """The clip's caption corrections, all of them (an empty list removes every correction)."""

    words: list[WordCorrection] = Field(
        max_length=MAX_CORRECTIONS, description="Corrections, at most one per word."
    )

    @model_validator(mode="after")
    def _once_each(self) -> PutWordsRequest:
        indices = [w.index for w in self.words]
        if len(set(indices)) != len(indices):
            raise ValueError("a word index appears twice")
        return self


class ClipWordOut(BaseModel):
    """A word of the clip as its captions show it."""

    index: int = Field(description="Position of the word in the video's transcript.")
    start: float = Field(description="Start in seconds from the start of the video.")
    end: float = Field(description="End in seconds.")
    text: str = Field(description="Text the captions show (the correction, if any).")
    heard: str = Field(description="Text the recogniser heard (the transcript's).")
    corrected: bool = Field(description="Whether a person corrected this word.")
    speaker: int | None = Field(default=None, description="Speaker turn id, when computed.")


class ClipWords(BaseModel):
    """The words inside a clip's bounds, with its caption corrections."""

    clip_id: uuid.UUID = Field(description="The clip.")
    video_id: uuid.UUID = Field(description="Its video.")
    start_s: float = Field(description="The clip's start.")
    end_s: float = Field(description="The clip's end.")
    words: list[ClipWordOut] = Field(description="Its words in time order.")
