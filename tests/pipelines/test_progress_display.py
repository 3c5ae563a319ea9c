"""The run's lines as a terminal shows them (pyte): bars fill, in the finished colour, and a
stage that reports seconds shows them."""

from __future__ import annotations

import io
from collections import Counter

import pyte
import pytest

from clipforge.db.repo.video_jobs import StageCounts
from pipelines.local.progress import RunProgress

_GREEN = "green"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _sixteen_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain xterm: 16 colours, where RGB styles collapse to a few greys."""
    monkeypatch.setenv("TERM", "xterm")
    for name in ("COLORTERM", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def _rows(raw: str) -> dict[str, list[pyte.screens.Char]]:
    screen = pyte.Screen(120, 20)
    pyte.Stream(screen).feed(raw.replace("\n", "\r\n"))  # what a tty's onlcr does
    rows = {}
    for row in screen.buffer.values():
        text = "".join(row[x].data for x in range(120)).rstrip()
        if text:
            rows[text] = [row[x] for x in range(120) if row[x].data in "━╸╺"]
    return rows


@pytest.mark.parametrize("total_s", [25.9, 601.37, 3.0])
def test_a_finished_stage_has_a_full_bar_in_the_finished_colour(total_s: float) -> None:
    stream = _Terminal()
    with RunProgress(stream) as display:
        display._console._force_terminal = True
        display._show("transcribe", StageCounts(Counter(running=1), None, total_s / 3, total_s))
        display._show("transcribe", StageCounts(Counter(succeeded=1), None, total_s / 3, total_s))
        with display.step("shut down", "stopping Ray") as say:
            say("stopping the actors")
    rows = _rows(stream.getvalue())
    [transcribe] = [text for text in rows if text.startswith("transcribe")]
    assert transcribe.endswith("done") and "/" in transcribe
    [shutdown] = [text for text in rows if text.startswith("shut down")]
    assert shutdown.endswith("done")
    for text in (transcribe, shutdown):
        bar = rows[text]
        assert "".join(c.data for c in bar) == "━" * 24, text
        assert {c.fg for c in bar} == {_GREEN}, text


def test_a_running_stage_shows_seconds_done_and_a_partial_bar() -> None:
    stream = _Terminal()
    with RunProgress(stream) as display:
        display._console._force_terminal = True
        display._show("transcribe", StageCounts(Counter(running=1), None, 216.0, 600.0))
    rows = _rows(stream.getvalue())
    [line] = [text for text in rows if text.startswith("transcribe")]
    assert "3:36/10:00" in line and line.endswith("running")
    filled = [c for c in rows[line] if c.fg != rows[line][-1].fg]
    assert 8 <= len(filled) <= 10  # 36% of 24
