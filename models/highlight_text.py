"""Text and word-timing features of candidate windows.

Everything is computed once per sentence and then summed over windows with prefix sums, so
scoring 10,000 overlapping windows costs little more than scoring the sentences they share.
Embedding features (hook, payoff) compare sentence embeddings with exemplar sentences from the
config; the rest are transparent lexical cues that a person can check against the reason line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.highlight_config import ScorerConfig
from models.highlight_windows import Sentence, Window, ends_sentence
from models.types import Word

Array = npt.NDArray[np.float64]

_TOKEN = re.compile(r"[A-Za-z0-9$%']+")
_NUMBER_TEXT = (
    "two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty "
    "hundred hundreds thousand thousands million millions billion billions percent dozen "
    "half double triple"
)
_NUMBER_WORDS = frozenset(_NUMBER_TEXT.split())
_DIGIT_TEXT = "zero one two three four five six seven eight nine"
_COUNT_DIGITS = frozenset(_DIGIT_TEXT.split())
# Words that carry emotional intensity or strong sentiment either way. Small on purpose: every
# entry is a signal a viewer would notice, and the list is easy to audit.
_EMOTION_TEXT = (
    "amazing incredible insane crazy unbelievable shocking terrifying horrible terrible awful "
    "disaster brutal devastating painful furious angry hate hated love loved obsessed "
    "beautiful brilliant genius perfect best worst ever never always huge massive wild "
    "scared afraid fear panic desperate heartbreaking hilarious ridiculous absolutely "
    "totally literally seriously honestly mistake failed fail failure lost broke fired "
    "secret shocked stunned wow omg dangerous deadly explode exploded destroyed"
)
_EMOTION_WORDS = frozenset(_EMOTION_TEXT.split())


@dataclass(frozen=True, slots=True)
class SentenceCues:
    """Per-sentence cues (arrays of shape (n_sentences,)).

    Attributes:
        hook_sim: best cosine similarity to a hook exemplar.
        payoff_sim: best cosine similarity to a payoff exemplar.
        question: 1 for a question.
        numbers: count of numeric tokens.
        emotion: count of emotional words and exclamation marks.
        words: word count.
    """

    hook_sim: Array
    payoff_sim: Array
    question: Array
    numbers: Array
    emotion: Array
    words: Array


def _scale(values: Array, low: float, high: float) -> Array:
    return np.clip((values - low) / (high - low), 0.0, 1.0)


# After these words a number names a key, a line or a code, not a quantity ("press 1", "dial
# 600", "extension 1234").
_ID_TEXT = "press dial extension password option channel code pin"
_ID_CONTEXT = frozenset(_ID_TEXT.split())


def _is_number(token: str) -> bool:
    return token.isdigit() or token in _NUMBER_WORDS or token in ("$", "%")


def _count_numbers(tokens: list[str]) -> int:
    """Numbers that state a quantity. Identifiers are not concrete numbers: callsigns and model
    names that mix letters and digits ("w5abc", "ts2000"), digits keyed after "press"/"dial",
    and runs of three or more single digits read one by one ("1 2 3 4", "one two three")."""
    count = 0
    run: list[str] = []
    for i, token in enumerate([*tokens, ""]):
        single = (token.isdigit() and len(token) == 1) or token in _COUNT_DIGITS
        if single:
            run.append(token)
            continue
        if run:
            keyed = i > len(run) and tokens[i - len(run) - 1] in _ID_CONTEXT
            if len(run) < 3 and not keyed:  # "one" alone is a pronoun as often as a number
                count += sum(1 for t in run if t.isdigit() or t in _NUMBER_WORDS)
            run = []
        if token and _is_number(token):
            keyed = i > 0 and tokens[i - 1] in _ID_CONTEXT
            count += 0 if keyed else 1
    return count


def sentence_cues(
    sentences: Sequence[Sentence],
    sentence_emb: npt.NDArray[np.float32],
    hook_emb: npt.NDArray[np.float32],
    payoff_emb: npt.NDArray[np.float32],
) -> SentenceCues:
    """Cues for every sentence; embeddings must be unit vectors (rows)."""
    emb = sentence_emb.astype(np.float64)
    tokens = [_TOKEN.findall(s.text.lower()) for s in sentences]
    return SentenceCues(
        hook_sim=(emb @ hook_emb.astype(np.float64).T).max(axis=1),
        payoff_sim=(emb @ payoff_emb.astype(np.float64).T).max(axis=1),
        question=np.array([1.0 if "?" in s.text else 0.0 for s in sentences]),
        numbers=np.array([float(_count_numbers(t)) for t in tokens]),
        emotion=np.array(
            [
                sum(1 for w in t if w in _EMOTION_WORDS) + min(s.text.count("!"), 2)
                for s, t in zip(sentences, tokens, strict=True)
            ],
            dtype=np.float64,
        ),
        words=np.array([float(s.n_words) for s in sentences]),
    )


def _window_sum(values: Array, first: npt.NDArray[np.intp], last: npt.NDArray[np.intp]) -> Array:
    prefix = np.concatenate([[0.0], np.cumsum(values)])
    return np.asarray(prefix[last + 1] - prefix[first], dtype=np.float64)


def _opener(text: str) -> str:
    tokens = _TOKEN.findall(text.lower())
    return tokens[0] if tokens else ""


def text_features(
    windows: Sequence[Window],
    sentences: Sequence[Sentence],
    cues: SentenceCues,
    config: ScorerConfig,
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Sub-scores (0..1) and raw details for each window, from its sentences."""
    first = np.array([w.first for w in windows], dtype=np.intp)
    last = np.array([w.last for w in windows], dtype=np.intp)
    second = np.minimum(first + 1, last)
    low, high = config.similarity_range
    # The opening decides whether a viewer keeps watching, so the first sentence counts fully
    # and the second at 80%; the payoff is looked for in the last two sentences.
    hook_sim = np.maximum(cues.hook_sim[first], 0.8 * cues.hook_sim[second])
    payoff_sim = np.maximum(cues.payoff_sim[last], cues.payoff_sim[np.maximum(last - 1, first)])
    n_words = np.maximum(_window_sum(cues.words, first, last), 1.0)
    numbers = _window_sum(cues.numbers, first, last)
    emotion = _window_sum(cues.emotion, first, last)
    questions = _window_sum(cues.question, first, last)
    dangling = set(config.dangling_openers)
    opens_dangling = np.array([_opener(sentences[w.first].text) in dangling for w in windows])
    ends_open = np.array([not ends_sentence(sentences[w.last].text) for w in windows])
    standalone = 1.0 - 0.6 * opens_dangling - 0.3 * ends_open
    first_numbers = cues.numbers[first] + cues.numbers[second] * (second > first)
    subscores = {
        "hook": _scale(hook_sim, low, high),
        "payoff": _scale(payoff_sim, low, high),
        "standalone": np.clip(standalone, 0.0, 1.0),
        # Per 100 words, so long windows do not win just by containing more words.
        "emotion": _scale(100.0 * emotion / n_words, 0.0, 6.0),
        "question": np.maximum(cues.question[first], 0.5 * np.minimum(questions, 1.0)),
        "numbers": np.clip(0.25 * numbers + 0.35 * first_numbers, 0.0, 1.0),
    }
    details = {
        "hook_sim": hook_sim,
        "opens_question": cues.question[first],
        "opens_number": (first_numbers > 0).astype(np.float64),
        "opens_dangling": opens_dangling.astype(np.float64),
        "emotion_hits": emotion,
        "numbers": numbers,
    }
    return subscores, details


def timing_features(
    windows: Sequence[Window],
    words: Sequence[Word],
    sentences: Sequence[Sentence],
    config: ScorerConfig,
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Speech rate (words per second of the window) and flow (share of time not in long
    pauses) from word timings, which are more reliable than an energy-based voice detector."""
    starts = np.array([w.start for w in words])
    ends = np.array([w.end for w in words])
    gaps = np.maximum(np.concatenate([starts[1:] - ends[:-1], [0.0]]), 0.0)
    long_gaps = np.where(gaps >= config.pause_s, gaps, 0.0)
    gap_prefix = np.concatenate([[0.0], np.cumsum(long_gaps)])
    w_first = np.array([sentences[w.first].first_word for w in windows], dtype=np.intp)
    w_last = np.array(
        [sentences[w.last].first_word + sentences[w.last].n_words - 1 for w in windows],
        dtype=np.intp,
    )
    durations = np.maximum(np.array([w.duration for w in windows]), 1e-3)
    n_words = (w_last - w_first + 1).astype(np.float64)
    rate = n_words / durations
    # Gaps after the window's last word belong to the next window.
    paused = gap_prefix[w_last] - gap_prefix[w_first]
    pause_share = paused / durations
    low, high = config.speech_rate_range
    subscores = {
        "speech_rate": _scale(rate, low, high),
        "flow": 1.0 - _scale(pause_share, 0.0, 0.3),
    }
    return subscores, {"words_per_s": rate, "pause_share": pause_share}


def window_embeddings(
    windows: Sequence[Window],
    sentence_emb: npt.NDArray[np.float32],
    word_counts: Array,
) -> npt.NDArray[np.float32]:
    """Window embeddings as the word-weighted mean of their sentence embeddings, re-normalised.

    Encoding each window's full text would cost one forward pass per window (and truncate long
    ones at 256 tokens); the mean of sentence vectors keeps to one pass over the sentences.
    """
    weighted = sentence_emb.astype(np.float64) * word_counts[:, None]
    prefix = np.concatenate([np.zeros((1, weighted.shape[1])), np.cumsum(weighted, axis=0)])
    first = np.array([w.first for w in windows], dtype=np.intp)
    last = np.array([w.last for w in windows], dtype=np.intp)
    sums = prefix[last + 1] - prefix[first]
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return np.asarray(sums / np.maximum(norms, 1e-12), dtype=np.float32)
