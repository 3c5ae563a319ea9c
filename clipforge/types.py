"""Domain result types shared by models, persistence, pipelines and the API.

They live in the core package because the database layer stores them and the models produce
them; `models.types` re-exports them for model code.

Frozen dataclasses so results can be hashed, compared in tests and sent through Ray unchanged.
Times are seconds from the start of the source media.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

# One definition of the output shapes and caption styles for the CLI, the config, the models and
# the API, so a new choice is added in one place.
# Each renders at its preset size (pipelines/render/clip.py PRESETS): 1080x1920, 1080x1350, 1080x1080,
# 1920x1080.
AspectRatio = Literal["9:16", "4:5", "1:1", "16:9"]
# `auto` is `shorts` for the short-form shapes (9:16, 4:5, 1:1) and `karaoke` for 16:9;
# `shorts`: 1-4 large words per cue, the spoken word highlighted; `karaoke`, `bold`, `minimal`:
# two-line cues; `subtitle`: plain broadcast subtitles; `speakers` colours each word by its
# speaker (models/caption_formats.py).
CaptionStyle = Literal["auto", "shorts", "karaoke", "bold", "minimal", "speakers", "subtitle"]
ASPECT_RATIOS: tuple[str, ...] = get_args(AspectRatio)
CAPTION_STYLES: tuple[str, ...] = get_args(CaptionStyle)
# Who the crop follows (pipelines/render/reframe.py): `auto` (the active speaker, two stacked crops when
# two people alternate quickly), `speaker` (always one crop on the active speaker), `split`
# (always two stacked crops when there are two faces) or `center` (a fixed centre crop).
Layout = Literal["auto", "speaker", "split", "center"]
LAYOUTS: tuple[str, ...] = get_args(Layout)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Identity of a model that produced an output.

    Attributes:
        name: stable model name, e.g. ``whisper-tiny.en``.
        version: version string; includes the weights hash prefix so a changed file is a new version.
        sha256: hex digest over the weight files.
    """

    name: str
    version: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word.

    Attributes:
        start: start time in seconds.
        end: end time in seconds (>= start).
        text: the word as spoken, without surrounding whitespace.
        probability: recogniser confidence in [0, 1].
        speaker: who says it: 0, 1, ... in order of first appearance (`models.speakers`);
            None when speaker turns were not computed (older transcripts, plain ASR output).
    """

    start: float
    end: float
    text: str
    probability: float = 1.0
    speaker: int | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    """A sentence-like span of speech with its words.

    Attributes:
        start: start time in seconds.
        end: end time in seconds.
        text: the segment text.
        words: the words, in order, with absolute times.
    """

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Transcript:
    """A whole transcript of one media file.

    Attributes:
        language: ISO 639-1 code that was detected or forced.
        duration: duration of the audio in seconds.
        segments: segments in time order.
        model: the ASR model that made it.
    """

    language: str
    duration: float
    segments: tuple[Segment, ...]
    model: ModelInfo

    @property
    def words(self) -> tuple[Word, ...]:
        """All words in time order."""
        return tuple(w for s in self.segments for w in s.words)

    @property
    def text(self) -> str:
        """The full text, segments joined by spaces."""
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of transcript.json and the fixtures (words under each segment)."""
        return {
            "language": self.language,
            "duration": self.duration,
            "model": {
                "name": self.model.name,
                "version": self.model.version,
                "sha256": self.model.sha256,
            },
            "segments": [
                {
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "words": [
                        {
                            "start": w.start,
                            "end": w.end,
                            "text": w.text,
                            "probability": w.probability,
                            # only when known, so transcripts without turns keep their layout
                            **({"speaker": w.speaker} if w.speaker is not None else {}),
                        }
                        for w in s.words
                    ],
                }
                for s in self.segments
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transcript:
        """Inverse of `to_dict` (`probability`, `speaker` and the model's `sha256` may be absent)."""
        segments = tuple(
            Segment(
                start=float(s["start"]),
                end=float(s["end"]),
                text=str(s["text"]),
                words=tuple(
                    Word(
                        float(w["start"]),
                        float(w["end"]),
                        str(w["text"]),
                        float(w.get("probability", 1.0)),
                        None if w.get("speaker") is None else int(w["speaker"]),
                    )
                    for w in s["words"]
                ),
            )
            for s in data["segments"]
        )
        m = data["model"]
        model = ModelInfo(
            name=str(m["name"]), version=str(m["version"]), sha256=str(m.get("sha256", ""))
        )
        return cls(str(data["language"]), float(data["duration"]), segments, model)
