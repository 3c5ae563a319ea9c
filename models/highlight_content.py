"""The content sub-score: is this something worth quoting, or procedural speech?

An editor picks a claim, a piece of advice, a story's turn, a punchline or a strong opinion, and
skips menus, phone-system prompts, instructions, boilerplate and read-out lists. Two kinds of
evidence are combined per sentence, then averaged over a window's sentences:

- meaning: cosine similarity (all-MiniLM-L6-v2, the encoder the scorer already runs) to two
  prototype sets from the config, "quotable" and "procedural"; the margin between the two says
  which kind of speech a sentence resembles, whatever its words;
- form: transparent cues a person can check. Procedural: menu verbs ("press", "dial", "enter"),
  call-centre nouns ("extension", "voicemail", "pound key"), spelled-out callsigns, runs of
  digits. Quotable: a first-person stance ("I think", "we learned"), contrast ("but",
  "actually"), evaluation ("surprising", "mistake", "never"), a question put to the listener;
- rhetoric: the two devices that make a line memorable by its shape, found between adjacent
  clauses: chiasmus (the second clause repeats the first's words in reversed order: "ask not
  what your country can do for you, ask what you can do for your country") and antithesis (a
  negated clause restated positively: "it's not the money, it's the people"). A menu repeats
  its items in the same order and is not negated, so it shows neither.

The per-sentence value is a logistic of a weighted sum, so it spreads over 0..1 instead of
hugging the middle as a mean of many weak cues does. Everything runs on the sentence embeddings
the scorer computes anyway: the only extra model cost is embedding the prototypes once.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.highlight_windows import Sentence, Window

Array = npt.NDArray[np.float64]

_TOKEN = re.compile(r"[a-z0-9']+")
# Verbs that tell the listener which button to push or what to type: the core of a menu.
_MENU_VERBS_TEXT = "press dial enter select hang hold record choose type tap"
_MENU_VERBS = frozenset(_MENU_VERBS_TEXT.split())
_CALL_NOUNS_TEXT = (
    "extension extensions voicemail mailbox menu menus option options pound star key keypad "
    "tone operator representative representatives caller password digits conference "
    "transfer message messages greeting greetings channel console server"
)
_CALL_NOUNS = frozenset(_CALL_NOUNS_TEXT.split())
_PHONETIC_TEXT = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray zulu"
)
_PHONETIC = frozenset(_PHONETIC_TEXT.split())
_COUNT_TEXT = "zero one two three four five six seven eight nine ten eleven twelve"
_COUNT_WORDS = frozenset(_COUNT_TEXT.split())
_STANCE_TEXT = (
    "i i'm i've i'd we we've we're my our me think thought believe learned realised realized "
    "felt feel wish know knew"
)
_STANCE = frozenset(_STANCE_TEXT.split())
_CONTRAST_TEXT = "but however actually though although yet instead turns turned"
_CONTRAST = frozenset(_CONTRAST_TEXT.split())
_EVALUATIVE_TEXT = (
    "interesting intriguing surprising surprisingly important mistake lesson secret truth "
    "wrong right never always best worst love hate hard easy simple difference matters "
    "remarkable strange funny crazy amazing terrible wonderful honestly really indeed "
    "fail failed failure lost changed everything nobody everyone"
)
_EVALUATIVE = frozenset(_EVALUATIVE_TEXT.split())


@dataclass(frozen=True, slots=True)
class ContentCues:
    """Per-sentence content evidence (arrays of shape (n_sentences,)).

    Attributes:
        margin: best similarity to a quotable prototype minus best to a procedural one.
        procedural: procedural cue hits per word (menu verbs, call nouns, callsigns, counts).
        quotable: quotable cue hits per word (stance, contrast, evaluation).
        rhetoric: rhetorical devices with a neighbouring clause (chiasmus, antithesis), 0..2.
        value: the combined per-sentence content value in 0..1.
    """

    margin: Array
    procedural: Array
    quotable: Array
    rhetoric: Array
    value: Array


def _procedural_hits(tokens: list[str]) -> float:
    hits = sum(1.0 for t in tokens if t in _MENU_VERBS or t in _CALL_NOUNS)
    # One "echo" or "yankee" is a word; several phonetic-alphabet words are a spelled callsign.
    phonetic = sum(1 for t in tokens if t in _PHONETIC)
    hits += phonetic if phonetic >= 2 else 0.0
    # Digits and counted numbers beyond the first read as a list ("press 1 ... 2 ... 3").
    counts = sum(1 for t in tokens if t.isdigit() or t in _COUNT_WORDS)
    return hits + max(counts - 1, 0) * 0.5


def _quotable_hits(tokens: list[str], text: str) -> float:
    hits = sum(1.0 for t in tokens if t in _STANCE) * 0.5
    hits += sum(1.0 for t in tokens if t in _CONTRAST or t in _EVALUATIVE)
    return hits + (1.0 if text.rstrip().endswith("?") else 0.0)


# Left out when comparing two clauses' words: they repeat in any two sentences.
_FUNCTION_TEXT = "the a an to of and in on at is it that this so be"
_FUNCTION_WORDS = frozenset(_FUNCTION_TEXT.split())
# Only a plain negation makes a clause the "not" half of an antithesis; a contraction is as often
# part of a name ("a polite don't-call menu").
_NEGATION = frozenset(("not", "never"))
_CLAUSE_BREAK = re.compile(r"[,;:]|\bbut\b|\byet\b")
_SHARED_MIN = 3  # words two clauses must share before their shapes are compared
_REVERSED_MIN = 0.3  # share of the shared words' pairs whose order flips: chiasmus


def _clauses(text: str) -> list[list[str]]:
    parts = [_TOKEN.findall(p) for p in _CLAUSE_BREAK.split(text.lower())]
    return [p for p in parts if p]


def _device(a: list[str], b: list[str]) -> float:
    """Chiasmus (1) and antithesis (1) between two adjacent clauses."""
    first_a: dict[str, int] = {}
    first_b: dict[str, int] = {}
    for i, t in enumerate(a):
        first_a.setdefault(t, i)
    for i, t in enumerate(b):
        first_b.setdefault(t, i)
    shared = [t for t in first_b if t in first_a and t not in _FUNCTION_WORDS | _NEGATION]
    if len(shared) < _SHARED_MIN:
        return 0.0
    order = [first_a[t] for t in sorted(shared, key=first_b.__getitem__)]
    pairs = len(order) * (len(order) - 1) / 2
    flipped = sum(1 for i, x in enumerate(order) for y in order[i + 1 :] if x > y) / pairs
    negated_a, negated_b = bool(_NEGATION & set(a)), bool(_NEGATION & set(b))
    return float(flipped >= _REVERSED_MIN) + float(negated_a != negated_b)


def _rhetoric(sentences: Sequence[Sentence]) -> Array:
    """Per sentence: the strongest device between adjacent clauses inside it or across its
    borders with the sentences before and after it."""
    clauses = [_clauses(s.text) for s in sentences]
    out = np.zeros(len(sentences))
    for i, own in enumerate(clauses):
        pairs = list(itertools.pairwise(own))
        if i > 0 and clauses[i - 1] and own:
            pairs.append((clauses[i - 1][-1], own[0]))
        if i + 1 < len(clauses) and clauses[i + 1] and own:
            pairs.append((own[-1], clauses[i + 1][0]))
        out[i] = max((_device(a, b) for a, b in pairs), default=0.0)
    return out


def content_cues(
    sentences: Sequence[Sentence],
    sentence_emb: npt.NDArray[np.float32],
    quotable_emb: npt.NDArray[np.float32],
    procedural_emb: npt.NDArray[np.float32],
) -> ContentCues:
    """Content evidence for every sentence; embeddings must be unit rows."""
    emb = sentence_emb.astype(np.float64)
    # Mean of the best two: one lucky prototype match should not decide a sentence alone.
    quotable_sim = _top2_mean(emb @ quotable_emb.astype(np.float64).T)
    procedural_sim = _top2_mean(emb @ procedural_emb.astype(np.float64).T)
    tokens = [_TOKEN.findall(s.text.lower()) for s in sentences]
    n_words = np.array([max(len(t), 1) for t in tokens], dtype=np.float64)
    procedural = np.array([_procedural_hits(t) for t in tokens]) / n_words
    quotable = np.array(
        [_quotable_hits(t, s.text) for t, s in zip(tokens, sentences, strict=True)]
    ) / np.sqrt(n_words)
    margin = quotable_sim - procedural_sim
    rhetoric = _rhetoric(sentences)
    # Weights set by hand on the planted and synthetic fixtures, then checked (not fitted) on
    # the real-speech set (docs/evaluation.md): a margin of +-0.15 alone moves the value from
    # about 0.2 to 0.8; one menu word in five words costs as much as a margin of 0.1; one
    # rhetorical device lifts a neutral sentence to about 0.8 (it is a property of the whole
    # line, so it is not divided by the word count).
    logit = 9.0 * margin - 5.0 * procedural + 1.2 * quotable + 1.5 * rhetoric - 0.3
    value = 1.0 / (1.0 + np.exp(-logit))
    return ContentCues(
        margin=margin, procedural=procedural, quotable=quotable, rhetoric=rhetoric, value=value
    )


# A sentence this low in content that also has procedural cues is a menu item or a prompt.
_EDGE_PROCEDURAL_MAX = 0.1


def edge_procedural(cues: ContentCues) -> npt.NDArray[np.bool_]:
    """Sentences an editor would cut from a clip's edge: procedural speech (a menu item, a
    prompt). A merely plain sentence ("Thank you for calling.") has no procedural cue and
    stays."""
    return np.asarray((cues.value < _EDGE_PROCEDURAL_MAX) & (cues.procedural > 0), dtype=np.bool_)


def _top2_mean(sims: Array) -> Array:
    if sims.shape[1] == 1:
        return np.asarray(sims[:, 0], dtype=np.float64)
    top = np.sort(sims, axis=1)[:, -2:]
    return np.asarray(top.mean(axis=1), dtype=np.float64)


def content_features(
    windows: Sequence[Window], sentences: Sequence[Sentence], cues: ContentCues
) -> tuple[dict[str, Array], dict[str, Array]]:
    """The `content` sub-score of each window: word-weighted mean of its sentences' values,
    blended with its best sentence (a clip is remembered for its best line, but a good line
    buried in a minute of menu reading does not make a good clip)."""
    words = np.array([float(max(s.n_words, 1)) for s in sentences])
    first = np.array([w.first for w in windows], dtype=np.intp)
    last = np.array([w.last for w in windows], dtype=np.intp)
    total = _window_sum(words, first, last)
    mean = _window_sum(words * cues.value, first, last) / total
    procedural = _window_sum(words * cues.procedural, first, last) / total
    best = _window_max(cues.value, first, last)
    content = np.clip(0.75 * mean + 0.25 * best, 0.0, 1.0)
    return {"content": content}, {"content_best": best, "procedural_rate": procedural}


def _window_sum(values: Array, first: npt.NDArray[np.intp], last: npt.NDArray[np.intp]) -> Array:
    prefix = np.concatenate([[0.0], np.cumsum(values)])
    return np.asarray(prefix[last + 1] - prefix[first], dtype=np.float64)


def _window_max(values: Array, first: npt.NDArray[np.intp], last: npt.NDArray[np.intp]) -> Array:
    """Max of `values[first:last + 1]` per window, grown one sentence at a time: windows span
    at most a few dozen sentences, so this is a few dozen vector operations, not a loop over
    thousands of windows."""
    best = values[first].copy()
    span = last - first
    for step in range(1, int(span.max(initial=0)) + 1):
        inside = span >= step
        best[inside] = np.maximum(best[inside], values[first[inside] + step])
    return best
