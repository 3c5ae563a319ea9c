"""A title and a hook line for each clip.

Extractive by default: both are the clip's own sentences, so they cannot invent facts. A sentence
qualifies only if, once tidied, it stands alone (`stands_alone`): at least three words, no
leading conjunction or filler ("and", "but", "so", "because", "or", "oh", "um", ...), no trailing
ellipsis and no last word that leaves the phrase hanging ("the", "of", "to", ...). Sentences are
split at terminal punctuation but never after an abbreviation such as "Mr." or "Dr.". The title
is the qualifying sentence closest to the mean of the clip's sentence embeddings (its most
central statement), preferring one that fits the length limit whole; the hook is the first
qualifying sentence that opens strongly (resembles a hook exemplar, asks a question or states a
number). A sentence longer than the limit is cut at a clause boundary, else after a whole word,
never with an ellipsis. When no sentence qualifies, consecutive sentences are joined until the
phrase does. A seq2seq model from a local folder (`Settings.title_model_dir`) can write the
title instead; its output falls back to the extractive title unless it stands alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clipforge.errors import ConfigError, ValidationFailed
from clipforge.settings import Settings
from models.highlight_config import ScorerConfig
from models.highlight_windows import ends_sentence
from models.registry import TITLE_MODEL_NAME, model_info
from models.text_encoder import TextEncoder
from models.types import ModelInfo, Word

_FILLER_TEXT = (
    "so and but or because nor yet then also plus um uh yeah okay ok well like oh ah anyway"
)
_FILLER_OPENERS = frozenset(_FILLER_TEXT.split())
#: Fewest words of a title or hook: one or two words are a label, not a phrase.
MIN_WORDS = 3
_HAS_NUMBER = re.compile(r"\d")
# Where a clause ends inside a sentence: punctuation then a space, or a free-standing dash.
_CLAUSE_END = re.compile(r"[,;:\u2013\u2014](?=\s)|\s[-\u2013\u2014]\s")
# Words that cannot end a title: a cut after them leaves the phrase visibly unfinished.
_HANGING_WORDS = """
a an the and or but nor of to in on at for with by from as into about than that which who whose
whom is are was were be been my your our their its his her this these those each every not very
if so because when while
"""
_HANGING = frozenset(_HANGING_WORDS.split())


@dataclass(frozen=True, slots=True)
class TitleOptions:
    """Title and hook limits.

    Attributes:
        max_title_chars: longer titles are cut where a phrase or word ends (see `shorten`).
        max_hook_chars: same for the hook line.
        hook_similarity: cosine similarity to a hook exemplar that makes a sentence "strong".
        max_new_tokens: generation length of the seq2seq model.
        prompt: text put before the clip transcript for the seq2seq model.
    """

    max_title_chars: int = 60
    max_hook_chars: int = 100
    hook_similarity: float = 0.45
    max_new_tokens: int = 16
    prompt: str = "title: "

    def __post_init__(self) -> None:
        if self.max_title_chars < 10 or self.max_hook_chars < 10 or self.max_new_tokens < 1:
            raise ValidationFailed("title/hook limits must be >= 10 chars and >= 1 token")


@dataclass(frozen=True, slots=True)
class ClipTitle:
    """Title and hook of one clip.

    Attributes:
        title: short title.
        hook: one line to show at the start of the clip.
        method: `extractive` or `seq2seq` (how the title was made).
        models: models that made them.
    """

    title: str
    hook: str
    method: Literal["extractive", "seq2seq"]
    models: tuple[ModelInfo, ...]


def sentences_of(words: Sequence[Word]) -> list[str]:
    """The words grouped into sentences at terminal punctuation."""
    out: list[str] = []
    current: list[str] = []
    for word in words:
        current.append(word.text.strip())
        if ends_sentence(word.text):
            out.append(" ".join(current))
            current = []
    if current:
        out.append(" ".join(current))
    return [s for s in out if s]


def shorten(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else a prefix that ends where a phrase or word does.

    A clause boundary (comma, semicolon, colon, dash) that keeps at least half the limit wins:
    the prefix is a whole phrase. Otherwise the cut goes after the last whole word that fits,
    minus trailing function words ("the", "of", ...) that would leave the phrase hanging. No
    ellipsis is added: a title reads as a phrase, not as a teaser of one. Only a single word
    longer than the limit is cut inside.
    """
    text = text.strip()
    if len(text) <= limit:
        return text
    clauses = [
        m.start()
        for m in _CLAUSE_END.finditer(text)
        if limit // 2 <= len(text[: m.start()].rstrip()) <= limit
    ]
    if clauses:
        return text[: clauses[-1]].rstrip()
    kept: list[str] = []
    for token in text.split():
        if len(" ".join([*kept, token])) > limit:
            break
        kept.append(token)
    while len(kept) > 1 and kept[-1].strip(",;:").lower() in _HANGING:
        kept.pop()
    return " ".join(kept).rstrip(",;:-\u2013\u2014 ") or text[:limit]


def stands_alone(text: str) -> bool:
    """Whether `text` reads as a complete phrase: at least `MIN_WORDS` words, no leading
    conjunction or filler, no ellipsis at the end and no hanging last word."""
    words = text.split()
    if len(words) < MIN_WORDS or text.rstrip().endswith(("\u2026", "...")):
        return False
    first = words[0].strip(",.;:!?\"'").lower()
    last = words[-1].strip(",.;:!?\"'").lower()
    return first not in _FILLER_OPENERS and last not in _HANGING


def tidy(sentence: str, limit: int, keep_question: bool = False) -> str:
    """Drop filler openers and closing punctuation, capitalise, shorten to `limit` (`shorten`)."""
    tokens = sentence.split()
    while len(tokens) > 1 and tokens[0].strip(",.;:!?").lower() in _FILLER_OPENERS:
        tokens.pop(0)
    text = " ".join(tokens).strip()
    question = text.endswith("?")
    text = text.rstrip(".!?,;: ")
    if len(text) > limit:
        text = shorten(text, limit)
    elif question and keep_question:
        text += "?"
    return text[:1].upper() + text[1:]


class ExtractiveTitler:
    """Titles and hooks from the clip's own sentences; one encoder pass for a batch of clips."""

    def __init__(
        self,
        encoder: TextEncoder,
        options: TitleOptions | None = None,
        hook_exemplars: Sequence[str] = ScorerConfig().hook_exemplars,
    ) -> None:
        """Embed the hook exemplars once."""
        self.encoder = encoder
        self.options = options or TitleOptions()
        self._hook_emb = encoder.encode(list(hook_exemplars))

    def titles(self, clips: Sequence[Sequence[Word]]) -> tuple[ClipTitle, ...]:
        """Title and hook for each clip's words. Raises `ValidationFailed` for a clip without words."""
        per_clip = [sentences_of(words) for words in clips]
        for i, sentences in enumerate(per_clip):
            if not sentences:
                raise ValidationFailed(f"clip {i} has no words to title")
        flat = [s for sentences in per_clip for s in sentences]
        emb = self.encoder.encode(flat)
        out: list[ClipTitle] = []
        offset = 0
        for sentences in per_clip:
            block = emb[offset : offset + len(sentences)]
            offset += len(sentences)
            out.append(self._one(sentences, block))
        return tuple(out)

    def _one(self, sentences: list[str], emb: np.ndarray[Any, Any]) -> ClipTitle:
        weights = np.array([len(s.split()) for s in sentences], dtype=np.float64)
        centroid = (emb * weights[:, None]).sum(axis=0)
        centrality = emb @ centroid
        strength = (emb @ self._hook_emb.T).max(axis=1)
        opts = self.options
        titles = [tidy(s, opts.max_title_chars) for s in sentences]
        hooks = [tidy(s, opts.max_hook_chars, keep_question=True) for s in sentences]
        fits = [len(tidy(s, 10_000)) <= opts.max_title_chars for s in sentences]
        usable = [i for i, t in enumerate(titles) if stands_alone(t)]
        # A sentence that fits whole beats a cut one; then the most central.
        best = max(usable, key=lambda i: (fits[i], centrality[i]), default=None)
        strong = [
            i
            for i, s in enumerate(sentences)
            if stands_alone(hooks[i])
            and (strength[i] >= opts.hook_similarity or "?" in s or _HAS_NUMBER.search(s))
        ]
        hook_usable = [i for i, h in enumerate(hooks) if stands_alone(h)]
        # Earliest first, but a sentence that fits whole beats one that has to be cut.
        fits_hook = [len(tidy(s, 10_000)) <= opts.max_hook_chars for s in sentences]
        order = sorted(strong or hook_usable, key=lambda i: (not fits_hook[i], i))
        hook = order[0] if order else None
        return ClipTitle(
            title=titles[best] if best is not None else _joined(sentences, opts.max_title_chars),
            hook=hooks[hook] if hook is not None else _joined(sentences, opts.max_hook_chars),
            method="extractive",
            models=(self.encoder.info,),
        )


def _joined(sentences: Sequence[str], limit: int) -> str:
    """Consecutive sentences joined (from each start) until the phrase stands alone; the whole
    clip text as a last resort (a clip of one short utterance)."""
    for start in range(len(sentences)):
        text = ""
        for sentence in sentences[start:]:
            text = tidy(f"{text} {sentence.rstrip('.!?')}".strip(), limit)
            if stands_alone(text):
                return text
    return tidy(" ".join(sentences), limit)


class Seq2SeqTitler:
    """Titles from a transformers seq2seq model in a local folder; hooks stay extractive."""

    def __init__(self, model_dir: Path, fallback: ExtractiveTitler) -> None:
        """Load tokenizer and model from `model_dir` (local files only)."""
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        if not (model_dir / "config.json").is_file():
            raise ConfigError(f"title model folder has no config.json: {model_dir}")
        self.fallback = fallback
        self.options = fallback.options
        self._tokenizer: Any = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self._model: Any = AutoModelForSeq2SeqLM.from_pretrained(
            str(model_dir), local_files_only=True
        )
        self._model.eval()
        self.info = model_info(TITLE_MODEL_NAME, model_dir)

    def titles(self, clips: Sequence[Sequence[Word]]) -> tuple[ClipTitle, ...]:
        """Generated title (greedy, so deterministic) and extractive hook for each clip."""
        import torch

        base = self.fallback.titles(clips)
        prompts = [self.options.prompt + " ".join(w.text for w in words) for words in clips]
        inputs = self._tokenizer(
            prompts, padding=True, truncation=True, max_length=512, return_tensors="pt"
        )
        inputs.pop("token_type_ids", None)
        with torch.inference_mode():
            generated = self._model.generate(
                **inputs, max_new_tokens=self.options.max_new_tokens, num_beams=1, do_sample=False
            )
        texts = self._tokenizer.batch_decode(generated, skip_special_tokens=True)
        out: list[ClipTitle] = []
        for extractive, text in zip(base, texts, strict=True):
            title = tidy(" ".join(str(text).split()), self.options.max_title_chars)
            if stands_alone(title):
                models = (*extractive.models, self.info)
                out.append(ClipTitle(title, extractive.hook, "seq2seq", models))
            else:
                out.append(extractive)
        return tuple(out)


def load_titler(
    settings: Settings, encoder: TextEncoder, options: TitleOptions | None = None
) -> ExtractiveTitler | Seq2SeqTitler:
    """The seq2seq titler when `Settings.title_model_dir` is set, else the extractive one."""
    extractive = ExtractiveTitler(encoder, options)
    if settings.title_model_dir is None:
        return extractive
    return Seq2SeqTitler(settings.title_model_dir, extractive)
