"""The one-line human reason attached to every scored window.

It names the strongest signals with the numbers a person can check ("fast speech (3.9
words/s)", "2 scene cuts"). It lists only what speaks for a clip: the line reads as "picked
because ...", so a weakness (long pauses, opening mid-thought) in it would read as praise. Weak
sub-scores stay visible as the low bars of the sub-scores themselves.
"""

from __future__ import annotations

from collections.abc import Mapping

#: A sub-score at or above this is worth mentioning.
MENTION = 0.5
MAX_PHRASES = 4


def _hook_phrase(values: Mapping[str, float], row: Mapping[str, float]) -> str:
    parts = [
        label
        for label, present in (
            ("question", row.get("opens_question", 0.0) > 0),
            ("number", row.get("opens_number", 0.0) > 0),
            ("hook phrasing", values.get("hook", 0.0) >= MENTION),
        )
        if present
    ]
    return "strong hook: " + " + ".join(parts) if parts else "strong hook"


def _phrases(values: Mapping[str, float], row: Mapping[str, float]) -> list[tuple[float, str]]:
    opens_strong = max(0.8 * row.get("opens_question", 0.0), 0.8 * row.get("opens_number", 0.0))
    cuts = int(row.get("cuts", 0.0))
    phrases = [
        (max(values.get("hook", 0.0), opens_strong), _hook_phrase(values, row)),
        (values.get("payoff", 0.0), "clear payoff"),
        (values.get("emotion", 0.0), "emotional language"),
        (
            values.get("speech_rate", 0.0),
            f"fast speech ({row.get('words_per_s', 0.0):.1f} words/s)",
        ),
        (values.get("energy", 0.0), "lively delivery"),
        (values.get("reactions", 0.0), f"laughter/applause ({int(row.get('bursts', 0.0))} bursts)"),
        (values.get("scene_cuts", 0.0), f"{cuts} scene cut{'' if cuts == 1 else 's'}"),
        (values.get("motion", 0.0), "lots of motion"),
    ]
    # Numbers already named in the hook are not repeated.
    if row.get("opens_number", 0.0) == 0:
        phrases.append((values.get("numbers", 0.0), f"{int(row.get('numbers', 0.0))} numbers"))
    return [p for p in phrases if p[0] >= MENTION]


def explain(values: Mapping[str, float], row: Mapping[str, float]) -> str:
    """One line naming the strongest signals, e.g. "strong hook: question + number; fast
    speech (3.9 words/s); 2 scene cuts".

    Args:
        values: the window's sub-scores (0..1).
        row: the window's raw details (words_per_s, cuts, bursts, opens_question, ...).
    """
    ranked = sorted(_phrases(values, row), key=lambda p: -p[0])
    parts = [text for _, text in ranked[:MAX_PHRASES]]
    return "; ".join(parts) if parts else "no strong signals"
