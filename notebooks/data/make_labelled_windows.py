"""Build `labelled_windows.json`: candidate windows of two test transcripts with relevance grades.

Sources (both are test media of the repo, so the set never needs a download):
- `speech_long`: the 10-minute podcast of `tests/fixtures/speech_long.txt`, with the sentence
  times espeak-ng produced (`speech_long.json` beside the video `scripts/make_test_media.py`
  builds). Word times spread each sentence's span evenly over its words.
- `hook_fixture`: `tests/fixtures/hook_transcript.json`, filler talk around one planted passage.

Labelling. A person read every sentence and marked the *hooks* (an opening that makes a viewer
stay: a pointed question, a surprising claim, a promised story) and the *payoffs* that resolve
them (the answer, the lesson); each payoff belongs to the arc of its hook. Everything else is
filler. Candidate windows are the scorer's own (`candidate_windows` with the default 15-60 s
limits), and each gets a grade from its sentences:

    3  opens on a hook and contains that hook's payoff: a complete, postable clip
    2  opens on a hook, but the payoff lies outside the window: a strong start, no resolution
    1  contains a hook or payoff, but opens elsewhere (the clip starts mid-thought)
    0  filler only

Run `python notebooks/data/make_labelled_windows.py` to regenerate; the output is deterministic.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from models.highlight_config import ScorerConfig
from models.highlight_windows import candidate_windows, split_sentences
from models.types import Transcript

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
OUT = Path(__file__).with_name("labelled_windows.json")

#: speech_long sentence number (1-based line of speech_long.txt) -> (label, arc).
SPEECH_LONG_LABELS: dict[int, tuple[str, str]] = {
    4: ("hook", "good-release"),  # "...what does a good release look like?"
    5: ("payoff", "good-release"),  # "A good release is boring..."
    15: ("hook", "dashboards"),  # "A dashboard should answer one question: ...?"
    16: ("payoff", "dashboards"),  # "...the three numbers that matter most."
    18: ("hook", "noisy-alerts"),  # "Alerts that fire too often ... dangerous."
    19: ("payoff", "noisy-alerts"),  # "So we delete any alert that nobody acted on..."
    20: ("hook", "rollbacks"),  # "...the honest truth is that they are hard."
    23: ("payoff", "rollbacks"),  # "The safe approach is to change the format in two steps..."
    26: ("hook", "on-fire"),  # "...how to handle a bad night when everything is on fire."
    27: ("payoff", "on-fire"),  # "The answer is to stay calm..."
    47: ("hook", "dishes"),  # "Every system collects debt, the same way every kitchen..."
    48: ("payoff", "dishes"),  # "The trick is to wash a few dishes every day..."
    52: ("hook", "cleanup-days"),  # "Some managers worry that cleanup days slow down..."
    53: ("payoff", "cleanup-days"),  # "In our experience the opposite is true..."
    54: ("hook", "friday-outage"),  # "...a story about a mistake that taught me a lot."
    59: ("payoff", "friday-outage"),  # "Since then we never make large changes on a Friday."
    64: ("hook", "docs"),  # "Most documentation is written once and never read again."
    65: ("payoff", "docs"),  # "The documents that survive are short..."
    75: ("hook", "one-habit"),  # "If a listener could change one habit tomorrow, ...?"
    76: ("payoff", "one-habit"),  # "My advice is to make every change a little smaller..."
}

#: hook_transcript.json: sentence text prefix -> (label, arc); the planted passage.
HOOK_FIXTURE_LABELS: dict[str, tuple[str, str]] = {
    "What is the one mistake": ("hook", "planted"),
    "Here's the secret nobody": ("hook", "planted"),
    "The answer turned out": ("payoff", "planted"),
    "And that's why we now test": ("payoff", "planted"),
}

GRADES = {
    3: "opens on a hook and contains that hook's payoff (complete, postable clip)",
    2: "opens on a hook; its payoff lies outside the window",
    1: "contains a hook or payoff but opens elsewhere (starts mid-thought)",
    0: "filler only",
}


def _load_media_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "make_test_media", REPO / "scripts" / "make_test_media.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def speech_long_transcript() -> dict[str, Any]:
    """The speech_long transcript (one segment per sentence) from the media's sentence times."""
    media = _load_media_script().build_all()
    cues = json.loads(media["speech_long"].with_suffix(".json").read_text())
    segments = []
    for cue in cues:
        tokens = str(cue["text"]).split()
        slot = (float(cue["end"]) - float(cue["start"])) / len(tokens)
        words = [
            {
                "start": round(float(cue["start"]) + i * slot, 3),
                "end": round(float(cue["start"]) + (i + 0.85) * slot, 3),
                "text": token,
            }
            for i, token in enumerate(tokens)
        ]
        segments.append(
            {
                "start": words[0]["start"],
                "end": words[-1]["end"],
                "text": cue["text"],
                "words": words,
            }
        )
    return {
        "language": "en",
        "duration": round(float(cues[-1]["end"]) + 1.0, 3),
        "segments": segments,
        "model": {"name": "espeak-sentence-times", "version": "1", "sha256": "0" * 64},
    }


def hook_fixture_transcript() -> dict[str, Any]:
    """tests/fixtures/hook_transcript.json without its extra `hook` key."""
    data: dict[str, Any] = json.loads((FIXTURES / "hook_transcript.json").read_text())
    data.pop("hook", None)
    return data


def transcript_from_dict(data: dict[str, Any]) -> Transcript:
    """A `Transcript` from the JSON layout stored in the labelled set."""
    return Transcript.from_dict(data)


def _grade(labels: list[tuple[str, str] | None], first: int, last: int) -> int:
    opening = labels[first]
    inside = [lab for lab in labels[first : last + 1] if lab is not None]
    if opening is not None and opening[0] == "hook":
        return 3 if ("payoff", opening[1]) in inside else 2
    return 1 if inside else 0


def labelled_source(
    name: str, transcript: dict[str, Any], labels_of: Any, note: str
) -> dict[str, Any]:
    """One source: its transcript, labelled sentences and graded candidate windows."""
    config = ScorerConfig()
    sentences = split_sentences(transcript_from_dict(transcript), config.max_window_s)
    labels: list[tuple[str, str] | None] = [labels_of(i, s.text) for i, s in enumerate(sentences)]
    windows = candidate_windows(sentences, config.min_window_s, config.max_window_s)
    return {
        "name": name,
        "note": note,
        "transcript": transcript,
        "sentences": [
            {
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "label": lab[0] if lab else "filler",
                "arc": lab[1] if lab else None,
            }
            for s, lab in zip(sentences, labels, strict=True)
        ],
        "windows": [
            {
                "start": w.start,
                "end": w.end,
                "first_sentence": w.first,
                "last_sentence": w.last,
                "grade": _grade(labels, w.first, w.last),
            }
            for w in windows
        ],
    }


def _speech_long_label(index: int, _text: str) -> tuple[str, str] | None:
    return SPEECH_LONG_LABELS.get(index + 1)


def _hook_fixture_label(_index: int, text: str) -> tuple[str, str] | None:
    return next((v for k, v in HOOK_FIXTURE_LABELS.items() if text.startswith(k)), None)


def build() -> dict[str, Any]:
    """The whole labelled set as a JSON-ready dict."""
    return {
        "description": __doc__.split("\n\n")[2].replace("\n", " "),
        "grades": {str(k): v for k, v in GRADES.items()},
        "window_limits_s": [ScorerConfig().min_window_s, ScorerConfig().max_window_s],
        "sources": [
            labelled_source(
                "speech_long",
                speech_long_transcript(),
                _speech_long_label,
                "10-minute engineering podcast (tests/fixtures/speech_long.txt, espeak-ng times)",
            ),
            labelled_source(
                "hook_fixture",
                hook_fixture_transcript(),
                _hook_fixture_label,
                "filler talk around one planted hook passage (tests/fixtures/hook_transcript.json)",
            ),
        ],
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {OUT}")
