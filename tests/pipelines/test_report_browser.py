"""report.html in a real browser: Debian's chromium driven by Playwright, from a file:// URL.

The page is built from real artifacts (H.264/AAC clips cut by ffmpeg, caption files from our
writers) so the checks cover what a user gets: the clips and the source preview play (Debian's
chromium ships the proprietary codecs), captions load, links point at files that exist, the
transcript seeks, and every control can be reached and named.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from tests.pipelines._report_build import build_report

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip("no chromium binary (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def report(test_media: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A report folder built once for the module."""
    return build_report(test_media["speech_short"], tmp_path_factory.mktemp("report") / "out")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless chromium; no sandbox because the tests run as root."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: Browser, report: dict[str, Any]) -> Iterator[tuple[Page, list[str]]]:
    """The report open in a fresh context, with every console error and page error collected."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    errors: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(report["report"].as_uri())
    page.wait_for_load_state("load")
    yield page, errors
    context.close()


_PLAY = """async (video) => {
  if (video.readyState < 1) {
    await new Promise((ok, bad) => { video.onloadedmetadata = ok; video.onerror = bad; });
  }
  video.muted = true;
  await video.play();
  const start = video.currentTime;
  await new Promise((ok) => setTimeout(ok, 800));
  video.pause();
  return {ready: video.readyState, start, now: video.currentTime,
          duration: video.duration, error: video.error && video.error.message};
}"""


def test_every_video_loads_and_plays(page: tuple[Page, list[str]], report: dict[str, Any]) -> None:
    p, errors = page
    videos = p.locator("video")
    ready = [c for c in report["clips"] if c["export_status"] == "ready"]
    assert videos.count() == len(ready) + 1  # the clips and the source preview
    for i in range(videos.count()):
        state = videos.nth(i).evaluate(_PLAY)
        assert state["error"] is None and state["ready"] >= 1
        assert state["now"] > state["start"], state  # H.264 + AAC decodes in Debian's chromium
        assert state["duration"] > 1
    assert errors == []


def test_caption_tracks_load_with_cues(page: tuple[Page, list[str]]) -> None:
    p, errors = page
    states = p.evaluate(
        """async () => {
          const tracks = [...document.querySelectorAll('video > track')];
          tracks.forEach((t) => { if (t.track.mode === 'disabled') t.track.mode = 'hidden'; });
          await new Promise((ok) => setTimeout(ok, 500));
          return tracks.map((t) => ({kind: t.kind, ready: t.readyState,
                                     cues: t.track.cues ? t.track.cues.length : 0}));
        }"""
    )
    assert len(states) == 3
    for state in states:
        assert state == {"kind": "captions", "ready": 2, "cues": state["cues"]} and state["cues"]
    assert errors == []


def test_every_link_resolves_to_an_existing_file(
    page: tuple[Page, list[str]], report: dict[str, Any]
) -> None:
    p, _ = page
    hrefs: list[str] = p.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
    assert len(hrefs) == 2 * 5  # two rendered clips, five files each
    sources: list[str] = p.eval_on_selector_all(
        "video[src]", "els => els.map(v => v.currentSrc || v.src)"
    )
    for url in hrefs + sources:
        parsed = urlparse(url)
        assert parsed.scheme == "file", url
        path = Path(unquote(parsed.path))
        assert path.is_file() and path.stat().st_size > 0, url
        assert report["report"].parent in path.parents  # relative, inside the out folder


def test_timeline_is_drawn_with_a_time_axis_and_legend(page: tuple[Page, list[str]]) -> None:
    p, _ = page
    box = p.locator("svg#timeline").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 20
    ticks = p.locator("svg#timeline text.tick").all_text_contents()
    assert ticks[0] == "0:00" and len(ticks) >= 3
    assert all(re.fullmatch(r"\d+:\d\d", t) for t in ticks)
    legend = p.locator("svg#timeline .legend").text_content() or ""
    assert "window score" in legend and "chosen clip" in legend


def test_clicking_a_transcript_line_seeks_the_source(page: tuple[Page, list[str]]) -> None:
    p, errors = page
    line = p.locator("button.seg").nth(2)
    target = float(line.get_attribute("data-start") or "nan")
    assert target > 5
    p.locator("#source-video").evaluate("v => { v.muted = true; }")
    line.click()
    p.wait_for_function(
        "t => Math.abs(document.getElementById('source-video').currentTime - t) < 1.5",
        arg=target,
    )
    assert errors == []


def test_copy_button_copies_the_title(page: tuple[Page, list[str]], report: dict[str, Any]) -> None:
    p, errors = page
    p.locator("button[data-copy='clip-1-title']").click()
    p.wait_for_function("document.getElementById('status').textContent.startsWith('Copied')")
    assert p.evaluate("navigator.clipboard.readText()") == report["clips"][0]["title"]
    assert errors == []


def test_failed_export_is_listed_with_its_reason_and_markup_stays_text(
    page: tuple[Page, list[str]],
) -> None:
    p, _ = page
    card = p.locator("#clip-3")
    text = card.text_content() or ""
    assert "Export failed" in text and "onerror=window.__pwned=2" in text
    assert "<script>window.__pwned = 1</script>" in text  # shown as text, not run
    assert card.locator("video, script, img, b").count() == 0
    assert p.evaluate("typeof window.__pwned") == "undefined"


def test_controls_are_focusable_and_named(page: tuple[Page, list[str]]) -> None:
    p, _ = page
    unnamed = p.evaluate(
        """() => [...document.querySelectorAll('button, a, video, img, input, select')].filter(
          (el) => {
            const name = (el.getAttribute('aria-label') || el.getAttribute('title') ||
                          el.getAttribute('alt') || el.textContent || '').trim();
            return !name;
          }).map((el) => el.outerHTML.slice(0, 80))"""
    )
    assert unnamed == []
    controls = p.evaluate(
        "() => document.querySelectorAll('button, a[href], video[controls], summary').length"
    )
    reached: set[str] = set()
    for _ in range(controls * 10):  # a player's inner buttons take several Tab presses
        p.keyboard.press("Tab")
        reached.add(
            p.evaluate(
                """() => { const el = document.activeElement;
                  const all = [...document.querySelectorAll(
                    'button, a[href], video[controls], summary')];
                  return String(all.indexOf(el)); }"""
            )
        )
        if len(reached - {"-1"}) == controls:
            break
    assert len(reached - {"-1"}) == controls


def test_phone_layout_has_no_sideways_scroll(page: tuple[Page, list[str]]) -> None:
    p, _ = page
    assert p.locator("meta[name=viewport]").count() == 1
    p.set_viewport_size({"width": 375, "height": 812})
    p.wait_for_timeout(100)
    width = p.evaluate("document.documentElement.scrollWidth")
    assert width <= 375
    for box in (p.locator(".clip").nth(i).bounding_box() for i in range(3)):
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
