"""Short-form captions (the `shorts` style): 1-4 words per cue, phrase edges, large font, the
spoken word highlighted, placed clear of faces. Font size and fit are checked on pictures
rendered by ffmpeg's libass, not only on the ASS numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from clipforge.media import run_ffmpeg
from clipforge.types import Word
from models.caption import Cue, build_cues
from models.caption_formats import (
    RESOLUTIONS,
    STYLES,
    cue_options,
    place,
    resolve_style,
    to_ass,
)

# Several sentences, an "Mr." and a "Dr." inside sentences, commas, clause words, one long pause.
SENTENCES = [
    "Welcome back to the show.",
    "Today Mr. Smith and Dr. Jones explain, in plain words, why small tools win.",
    "They do one thing well because they stay simple and that is enough.",
    "Thanks for watching!",
]
PAUSE_AFTER = {"tools": 0.0, "well": 0.4}  # a 400 ms pause after "well" (inside a sentence)


def _words() -> tuple[list[Word], list[int]]:
    """Word timings (300 ms words, 50 ms gaps, 500 ms between sentences) and each word's
    sentence index."""
    words: list[Word] = []
    sentence_of: list[int] = []
    t = 0.0
    for k, sentence in enumerate(SENTENCES):
        for text in sentence.split():
            words.append(Word(t, t + 0.3, text))
            sentence_of.append(k)
            t += 0.35 + PAUSE_AFTER.get(text, 0.0)
        t += 0.5
    return words, sentence_of


def _cues() -> tuple[tuple[Cue, ...], list[Word], list[int]]:
    words, sentence_of = _words()
    cues = build_cues(words, 0.0, words[-1].end + 1.0, cue_options("shorts"))
    return cues, words, sentence_of


def test_auto_is_shorts_for_short_form_aspects_only() -> None:
    assert [resolve_style("auto", a) for a in ("9:16", "4:5", "1:1", "16:9")] == [
        "shorts",
        "shorts",
        "shorts",
        "karaoke",
    ]
    assert resolve_style("subtitle", "9:16") == "subtitle"


def test_every_cue_has_one_to_four_words_and_never_crosses_a_sentence_end() -> None:
    words, sentence_of = _words()
    cues = build_cues(words, 0.0, words[-1].end + 1.0, cue_options("shorts"))
    index = {(w.start, w.text): i for i, w in enumerate(words)}
    seen = []
    for cue in cues:
        assert 1 <= len(cue.words) <= 4, cue
        members = [index[(w.start, w.text)] for w in cue.words]
        assert len({sentence_of[i] for i in members}) == 1, f"{cue.text!r} crosses a sentence end"
        seen += members
    assert seen == list(range(len(words)))  # every word once, in order
    assert len(cues) >= 10  # 33 words: not a handful of long cues


def test_abbreviations_are_not_sentence_ends() -> None:
    cues, _, _ = _cues()
    texts = [c.text for c in cues]
    assert any("Mr. Smith" in t for t in texts), texts
    assert any("Dr. Jones" in t for t in texts), texts


def test_cues_break_at_punctuation_pauses_and_clause_words() -> None:
    cues, _, _ = _cues()
    for cue in cues:
        inner = cue.words[:-1]
        # phrase punctuation and sentence ends only ever close a cue
        assert not any(
            w.text.endswith((",", ".", "!")) and w.text not in ("Mr.", "Dr.") for w in inner
        )
        gaps = [b.start - a.end for a, b in zip(cue.words, cue.words[1:], strict=False)]
        assert all(g < 0.25 for g in gaps), f"{cue.text!r} runs through a pause"
    starts = [c.words[0].text for c in cues]
    assert "because" in starts  # "They do one thing well" + pause, then "because ..."
    assert "and" in starts  # "... stay simple / and that is enough."


def test_font_is_sized_to_the_output_height() -> None:
    cues, _, _ = _cues()
    for aspect, (width, height) in RESOLUTIONS.items():
        ass = to_ass(cues, "shorts", (width, height))
        size = int(re.search(r"^Style: shorts,[^,]+,(\d+),", ass, re.M).group(1))  # type: ignore[union-attr]
        assert f"PlayResX: {width}\nPlayResY: {height}" in ass
        assert size >= 0.04 * height, (aspect, size)


def _render_frame(ass: str, size: tuple[int, int], at_s: float, tmp: Path) -> np.ndarray:
    """One grey frame of the captions over black, drawn by ffmpeg's libass."""
    path = tmp / "c.ass"
    path.write_text(ass)
    w, h = size
    raw = run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"color=black:s={w}x{h}:d={at_s + 0.2}",
            "-vf",
            f"ass=filename={path}",
            "-ss",
            f"{at_s}",
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ],
        timeout_s=60,
        step="test_captions",
    )
    return np.frombuffer(raw, np.uint8).reshape(h, w)


def test_rendered_capitals_stand_over_four_percent_and_lines_fit(tmp_path: Path) -> None:
    # Capitals only (no descenders): the lit rows of one line are the capital height.
    words = [Word(0.0, 0.4, "WORLD"), Word(0.4, 0.8, "CUP")]
    for aspect in ("9:16", "4:5"):
        size = RESOLUTIONS[aspect]
        cues = build_cues(words, 0.0, 1.0, cue_options("shorts"))
        assert len(cues) == 1 and len(cues[0].lines) == 1
        frame = _render_frame(to_ass(cues, "shorts", size), size, 0.2, tmp_path)
        rows = np.flatnonzero((frame > 200).any(axis=1))
        assert rows.size and rows[-1] - rows[0] + 1 >= 0.04 * size[1], (aspect, rows[-1] - rows[0])
    # Wide lines (a long word, capitals) are shrunk to stay inside the 9:16 frame.
    wide = [Word(0.0, 0.5, "MAXIMUM"), Word(0.5, 1.0, "WWWWWWWWWWWWWWWWWW")]
    cues = build_cues(wide, 0.0, 1.2, cue_options("shorts"))
    frame = _render_frame(to_ass(cues, "shorts", "9:16"), RESOLUTIONS["9:16"], 0.3, tmp_path)
    cols = np.flatnonzero((frame > 30).any(axis=0))
    assert cols.size and cols[0] > 0 and cols[-1] < frame.shape[1] - 1


def test_the_spoken_word_is_highlighted_word_by_word() -> None:
    cues, _, _ = _cues()
    ass = to_ass(cues, "shorts", "9:16")
    highlight = STYLES["shorts"].highlight
    events = [line for line in ass.splitlines() if line.startswith("Dialogue:")]
    assert len(events) == sum(len(c.words) for c in cues)  # one event per spoken word
    first = cues[0]
    for k, line in enumerate(events[: len(first.words)]):
        text = line.split(",,", 2)[-1].split(",", 5)[-1]
        lit = re.findall(r"\{\\1c" + re.escape(highlight) + r"&\}([^{]+)\{\\r\}", text)
        assert lit == [first.words[k].text]  # exactly the word being spoken


@pytest.mark.parametrize("face", [(0.42, 0.69), (0.55, 0.85), (0.2, 0.45)])
def test_captions_are_placed_clear_of_a_face(face: tuple[float, float]) -> None:
    height = 1920
    block = 2 * 125 * 1.2
    alignment, margin = place(STYLES["shorts"], height, block, [face])
    top = margin / height if alignment == 8 else 1 - (margin + block) / height
    bottom = top + block / height
    assert bottom <= face[0] or top >= face[1], (alignment, top, bottom)
    assert top >= 0.10 and bottom <= 0.88  # inside the players' safe band


def test_broadcast_styles_keep_their_two_line_cues() -> None:
    words, _ = _words()
    for style in ("karaoke", "bold", "minimal", "speakers", "subtitle"):
        cues = build_cues(words, 0.0, words[-1].end + 1.0, cue_options(style))
        assert max(len(c.words) for c in cues) > 4  # subtitle-sized cues
        assert "Dialogue:" in to_ass(cues, style, "16:9")


def test_a_long_word_shrinks_only_its_own_cue() -> None:
    words = [
        Word(0.0, 0.4, "Hello."),
        Word(1.0, 1.8, "Incomprehensibilities"),
        Word(2.5, 2.9, "Bye."),
    ]
    cues = build_cues(words, 0.0, 3.5, cue_options("shorts"))
    ass = to_ass(cues, "shorts", "9:16")
    size = int(re.search(r"^Style: shorts,[^,]+,(\d+),", ass, re.M).group(1))  # type: ignore[union-attr]
    assert size == round(0.065 * 1920)
    shrunk = [line for line in ass.splitlines() if "\\fs" in line]
    assert len(shrunk) == 1 and "Incomprehensibilities" in shrunk[0]
