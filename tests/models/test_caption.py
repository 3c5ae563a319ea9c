"""Captions: cue limits, cues inside their clip, SRT/VTT round trips, ASS karaoke, titles
(extractive, and a tiny random seq2seq model built offline)."""

from __future__ import annotations

import hashlib
import itertools
import re
from functools import lru_cache
from pathlib import Path

import pytest

from clipforge.errors import ValidationFailed
from clipforge.settings import Settings
from models.caption import Cue, CueOptions, build_cues, wrap_lines
from models.caption_formats import RESOLUTIONS, STYLES, parse_srt, parse_vtt, to_ass, to_srt, to_vtt
from models.caption_titles import ExtractiveTitler, Seq2SeqTitler, load_titler, sentences_of
from models.highlight import HighlightScorer
from models.select import Clip, select_clips
from models.types import Word
from tests.models._fixtures import encoder, hook_transcript


@lru_cache(maxsize=1)
def clips() -> tuple[Clip, ...]:
    transcript = hook_transcript()
    return select_clips(HighlightScorer(encoder()).score(transcript), transcript)


def _cues(clip: Clip) -> tuple[Cue, ...]:
    return build_cues(hook_transcript().words, clip.start, clip.end)


def test_cues_respect_layout_and_duration_limits_and_stay_inside_the_clip() -> None:
    for clip in clips():
        cues = _cues(clip)
        assert cues
        assert " ".join(c.text for c in cues) == " ".join(w.text for w in clip.words)
        for cue in cues:
            assert 1 <= len(cue.lines) <= 2
            assert all(len(line) <= 42 for line in cue.lines)
            assert 0.8 - 1e-9 <= cue.duration <= 6.0 + 1e-9
            assert 0.0 <= cue.start < cue.end <= clip.duration + 1e-9
        for a, b in itertools.pairwise(cues):
            assert a.end <= b.start + 1e-9


def test_reading_speed_is_kept_where_the_speech_leaves_room() -> None:
    for clip in clips():
        cues = _cues(clip)
        for i, cue in enumerate(cues):
            limit = cues[i + 1].start if i + 1 < len(cues) else clip.duration
            if len(cue.text) / cue.duration > 17.0 + 1e-6:
                # Too fast only when the cue already runs until the next one (or the clip end).
                assert cue.end == pytest.approx(min(limit, cue.start + 6.0))
    # The filler clips are spoken slowly enough to be within the limit everywhere.
    slow = [c for c in clips() if c.words[0].text != "What"]
    assert all(len(c.text) / c.duration <= 17.0 + 1e-6 for clip in slow for c in _cues(clip))


def test_words_outside_the_clip_are_left_out_and_times_are_relative() -> None:
    words = [Word(0.0, 0.4, "before."), Word(10.0, 10.5, "Inside"), Word(10.6, 11.0, "words.")]
    words.append(Word(30.0, 30.5, "after."))
    cues = build_cues(words, 9.5, 12.0)
    assert [c.text for c in cues] == ["Inside words."]
    assert cues[0].start == pytest.approx(0.5) and cues[0].end <= 2.5
    assert cues[0].words[0].start == pytest.approx(0.5)


def test_bad_cue_inputs() -> None:
    assert build_cues([], 0.0, 10.0) == ()
    with pytest.raises(ValidationFailed, match="after its start"):
        build_cues([Word(0, 1, "a")], 5.0, 5.0)
    with pytest.raises(ValidationFailed, match="out of order"):
        build_cues([Word(3, 4, "b"), Word(1, 2, "a")], 0.0, 10.0)
    with pytest.raises(ValidationFailed):
        CueOptions(min_duration_s=7.0, max_duration_s=6.0)


def test_wrap_and_overlong_words() -> None:
    assert wrap_lines(["short", "line"], 42) == ("short line",)
    top, bottom = (
        wrap_lines(
            ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"], 30
        )
        or ()
    )
    assert len(top) <= len(bottom) <= 30
    assert wrap_lines(["x" * 50], 42) is None
    cues = build_cues([Word(0.0, 2.0, "https://example.com/" + "a" * 80)], 0.0, 3.0)
    assert all(len(line) <= 42 for c in cues for line in c.lines)


def test_srt_and_vtt_round_trip() -> None:
    cues = (*_cues(clips()[0]), Cue(20.0, 21.5, ("Tom & Jerry <3", "a > b")))
    for parsed in (parse_srt(to_srt(cues)), parse_vtt(to_vtt(cues))):
        assert [c.lines for c in parsed] == [c.lines for c in cues]
        for a, b in zip(parsed, cues, strict=True):
            assert a.start == pytest.approx(b.start, abs=5e-4)
            assert a.end == pytest.approx(b.end, abs=5e-4)
    assert "Tom &amp; Jerry &lt;3" in to_vtt(cues)


def test_parsers_accept_real_world_variants_and_refuse_garbage() -> None:
    vtt = (
        "\ufeffWEBVTT - title\r\n\r\nNOTE a comment\r\n\r\nSTYLE\r\n::cue { color: red }\r\n\r\n"
        "intro\r\n00:01.000 --> 00:02.500 align:start\r\n<v Ann>Hello</v> there\r\n"
    )
    (cue,) = parse_vtt(vtt)
    assert (cue.start, cue.end, cue.lines) == (1.0, 2.5, ("Hello there",))
    (srt_cue,) = parse_srt("1\n00:00:01,000 --> 00:00:02,000\n<i>hi</i>\n")
    assert srt_cue.lines == ("hi",)
    with pytest.raises(ValidationFailed, match="WEBVTT"):
        parse_vtt("00:01.000 --> 00:02.000\nhi\n")
    with pytest.raises(ValidationFailed, match="timestamp"):
        parse_srt("1\n00:00:xx,000 --> 00:00:02,000\nhi\n")
    with pytest.raises(ValidationFailed, match="ends before"):
        parse_srt("1\n00:00:03,000 --> 00:00:02,000\nhi\n")
    with pytest.raises(ValidationFailed, match="start --> end"):
        parse_srt("just some text\nmore text\n")


@pytest.mark.parametrize("aspect", sorted(RESOLUTIONS))
# `shorts` highlights word by word and `subtitle` is plain (tests/models/test_caption_short.py)
@pytest.mark.parametrize("style", sorted(s for s in STYLES if s not in ("shorts", "subtitle")))
def test_ass_has_styles_resolution_and_word_karaoke(style: str, aspect: str) -> None:
    cues = _cues(clips()[0])
    script = to_ass(cues, style=style, resolution=aspect)  # type: ignore[arg-type]
    width, height = RESOLUTIONS[aspect]
    assert f"PlayResX: {width}\nPlayResY: {height}" in script
    assert f"\nStyle: {style}," in script
    events = [line for line in script.splitlines() if line.startswith("Dialogue:")]
    assert len(events) == len(cues)
    for event, cue in zip(events, cues, strict=True):
        durations = [int(k) for k in re.findall(r"\\k(\d+)", event)]
        assert len(durations) >= len(cue.words)
        assert sum(durations) == pytest.approx(cue.duration * 100, abs=len(durations))
        assert ("\\N" in event) == (len(cue.lines) == 2)


def test_ass_refuses_unknown_style_and_escapes_override_characters() -> None:
    with pytest.raises(ValidationFailed, match="unknown caption style"):
        to_ass([], style="neon")
    script = to_ass([Cue(0.0, 1.0, ("{\\b1}x",))], style="minimal", resolution=(640, 360))
    assert "{\\b1}" not in script and "(\u29f5b1)x" in script


def test_extractive_title_and_hook() -> None:
    titler = ExtractiveTitler(encoder())
    titles = titler.titles([c.words for c in clips()])
    assert titles == titler.titles([c.words for c in clips()])
    best = titles[0]
    assert best.method == "extractive" and best.models == (encoder().info,)
    assert best.hook.startswith("What is the one mistake") and best.hook.endswith("?")
    for title, clip in zip(titles, clips(), strict=True):
        assert 0 < len(title.title) <= 60 and len(title.hook) <= 100
        source = " ".join(sentences_of(clip.words)).lower()
        assert title.title.rstrip("\u2026").lower() in source
    with pytest.raises(ValidationFailed, match="no words"):
        titler.titles([()])


def _tiny_seq2seq(folder: Path) -> None:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    words = sorted({w.text.lower().strip(".,?!") for w in hook_transcript().words})
    vocab = {tok: i for i, tok in enumerate(["<pad>", "</s>", "<unk>", "title:", *words])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    config = T5Config(  # type: ignore[call-arg]
        vocab_size=len(vocab), d_model=16, d_ff=32, d_kv=8, num_heads=2, num_layers=1,
        num_decoder_layers=1, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def test_seq2seq_titles_from_a_local_tiny_model(tmp_path: Path) -> None:
    _tiny_seq2seq(tmp_path)
    titler = load_titler(Settings(title_model_dir=tmp_path), encoder())
    assert isinstance(titler, Seq2SeqTitler)
    words = [c.words for c in clips()[:2]]
    first, second = titler.titles(words), titler.titles(words)
    assert first == second
    digest = hashlib.sha256((tmp_path / "model.safetensors").read_bytes()).hexdigest()
    for title in first:
        assert title.hook  # hooks stay extractive
        if title.method == "seq2seq":
            assert title.models[-1].sha256 == digest and 0 < len(title.title) <= 60
    assert any(t.method == "seq2seq" for t in first)
