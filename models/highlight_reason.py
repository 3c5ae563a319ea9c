"""The one-line human reason attached to every scored window.

Each phrase belongs to exactly one sub-score and is shown only when that sub-score is at or above
its threshold in `THRESHOLDS`, so a reason can never contradict the bars beside it ("strong hook"
needs the hook sub-score, "opens with a question" the question sub-score, and so on). Raw details
only fill in the numbers a person can check ("fast speech (3.9 words/s)", "2 scene cuts"). The
line lists only what speaks for a clip: it reads as "picked because ...", so a weakness (long
pauses, opening mid-thought) in it would read as praise.

A window none of whose reason sub-scores reaches its threshold has "no strong signal"; clip
selection keeps such a clip only to fill the top K, says so in its reason, and the automatic
exports skip it (`weak_clip_reason`, `pipelines.stages.detect`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

#: A sub-score at or above this is worth mentioning (the default of `THRESHOLDS`).
MENTION = 0.5
MAX_PHRASES = 4
NO_SIGNAL = "no strong signal"

Row = Mapping[str, float]


def _cuts(row: Row) -> str:
    cuts = int(row.get("cuts", 0.0))
    return f"{cuts} scene cut{'' if cuts == 1 else 's'}"


#: Phrase of each sub-score that can be a reason, from its raw details.
PHRASES: dict[str, Callable[[Row], str]] = {
    "content": lambda row: "quotable statement",
    "hook": lambda row: "strong hook phrasing",
    "question": lambda row: "opens with a question",
    "payoff": lambda row: "clear payoff",
    "emotion": lambda row: "emotional language",
    "numbers": lambda row: f"concrete numbers ({int(row.get('numbers', 0.0))})",
    "speech_rate": lambda row: f"fast speech ({row.get('words_per_s', 0.0):.1f} words/s)",
    "energy": lambda row: "lively delivery",
    "reactions": lambda row: f"laughter/applause ({int(row.get('bursts', 0.0))} bursts)",
    "scene_cuts": _cuts,
    "motion": lambda row: "lots of motion",
}

#: The sub-score each reason needs. Motion is noisy on compressed talking heads (block noise
#: moves pixels), so it needs more than the rest before it is named.
THRESHOLDS: dict[str, float] = {name: MENTION for name in PHRASES} | {"motion": 0.75}


#: Where each reason's evidence comes from; the line names the best of each source before a
#: second one of any, so words, voice and picture all get a say when all three are strong.
_SOURCE = {n: "text" for n in ("content", "hook", "question", "payoff", "emotion", "numbers")}
_SOURCE |= {"speech_rate": "timing", "energy": "audio", "reactions": "audio"}
_SOURCE |= {"scene_cuts": "visual", "motion": "visual"}


def reason_subscores(values: Mapping[str, float]) -> list[str]:
    """Names of the sub-scores the reason line names, strongest first (at most `MAX_PHRASES`).

    Ties keep the order of `PHRASES`, so the line is the same on every run.
    """
    strong = [n for n in PHRASES if values.get(n, 0.0) >= THRESHOLDS[n]]
    strong.sort(key=lambda n: -values[n])
    firsts: list[str] = []
    for name in strong:
        if all(_SOURCE[name] != _SOURCE[f] for f in firsts):
            firsts.append(name)
    chosen = (firsts + [n for n in strong if n not in firsts])[:MAX_PHRASES]
    return [n for n in strong if n in chosen]


def has_strong_signal(values: Mapping[str, float]) -> bool:
    """Whether any reason sub-score reaches its threshold."""
    return bool(reason_subscores(values))


def explain(values: Mapping[str, float], row: Row) -> str:
    """One line naming the strongest signals, e.g. "quotable statement; opens with a question;
    fast speech (3.9 words/s); 2 scene cuts", or "no strong signal".

    Args:
        values: the window's sub-scores (0..1).
        row: the window's raw details (words_per_s, cuts, bursts, numbers, ...).
    """
    names = reason_subscores(values)
    return "; ".join(PHRASES[n](row) for n in names) if names else NO_SIGNAL


def weak_clip_reason(found: int, top_k: int) -> str:
    """Reason of a clip kept without a strong signal, because only `found` clips stood out."""
    return (
        f"{NO_SIGNAL}: kept only because {found} of the top {top_k} clips stand out; "
        "not exported automatically"
    )
