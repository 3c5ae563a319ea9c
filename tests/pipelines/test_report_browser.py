"""report.html in a real browser: Debian's chromium driven by Playwright, from a file:// URL.

The page is built from real artifacts (H.264/AAC clips cut by ffmpeg, caption files from our
writers, the two_speakers video's turns) so the checks cover what a user gets: the clips and the
source preview play (Debian's chromium ships the proprietary codecs), the preview shows only the
burned captions until the caption file is switched on, links point at files that exist, the
timeline fits a phone, the transcript names its speakers and seeks, cards show no model names,
and every control can be reached and named.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from tests.pipelines._report_build import MODEL, MODEL_VERSION, build_report

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip("no chromium binary (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def report(test_media: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A report folder built once for the module."""
    return build_report(test_media["two_speakers"], tmp_path_factory.mktemp("report") / "out")


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
    hrefs: list[str] = p.eval_on_selector_all("a[download]", "els => els.map(a => a.href)")
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
    markers: list[str] = p.eval_on_selector_all(
        "a.marker", "els => els.map(a => a.getAttribute('href'))"
    )
    assert sorted(markers) == [f"#clip-{c['rank']}" for c in report["clips"]]
    assert all(p.locator(m).count() == 1 for m in markers)  # each marker leads to its card


def test_timeline_is_drawn_with_a_time_axis_and_legend(page: tuple[Page, list[str]]) -> None:
    p, _ = page
    box = p.locator("#timeline .plot").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 20
    line = p.locator("#timeline polyline.score").bounding_box()
    assert line is not None and line["width"] > box["width"] / 2  # the score line is drawn
    ticks = p.locator("#timeline .tick").all_text_contents()
    assert ticks[0] == "0:00" and len(ticks) >= 3
    assert all(re.fullmatch(r"\d+:\d\d", t) for t in ticks)
    legend = p.locator("#timeline .legend").text_content() or ""
    assert "score of each moment" in legend and "chosen clip" in legend


_BOX = (
    "(el) => { const r = el.getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom]; }"
)


def test_timeline_fits_a_phone_with_every_clip_marker_in_view(
    page: tuple[Page, list[str]], report: dict[str, Any]
) -> None:
    p, _ = page
    p.set_viewport_size({"width": 375, "height": 812})
    p.wait_for_timeout(100)
    timeline = p.locator("#timeline")
    assert timeline.evaluate("el => el.scrollWidth <= el.clientWidth")  # nothing scrolls sideways
    assert p.evaluate("document.documentElement.scrollWidth") <= 375
    markers = p.locator("#timeline a.marker")
    assert markers.count() == len(report["clips"])
    labels = []
    for i in range(markers.count()):
        for box in (markers.nth(i).evaluate(_BOX), markers.nth(i).locator("span").evaluate(_BOX)):
            left, right, top, bottom = box
            assert 0 <= left < right <= 375 and bottom > top, (i, box)
        labels.append(markers.nth(i).locator("span").evaluate(_BOX))
        assert markers.nth(i).locator("span").is_visible()
    # neighbouring clips' labels do not cover each other
    for a, b in ((a, b) for i, a in enumerate(labels) for b in labels[i + 1 :]):
        assert a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2], (a, b)
    the_end = markers.nth(markers.count() - 1).evaluate(_BOX)
    assert the_end[1] > 300  # the last clip, at the video's end, is drawn at the right edge
    for tick in p.locator("#timeline .tick").all():
        if tick.is_visible():
            left, right, _, _ = tick.evaluate(_BOX)
            assert left >= 0 and right <= 375


def test_preview_shows_one_caption_layer_until_the_toggle(page: tuple[Page, list[str]]) -> None:
    p, errors = page
    assert p.locator("track[default]").count() == 0
    modes = p.evaluate(
        "() => [...document.querySelectorAll('video')].map("
        "(v) => [...v.textTracks].map((t) => t.mode))"
    )
    assert len(modes) == 3 and all(m == ["hidden"] for m in modes), modes  # loaded, not drawn
    toggle = p.locator("button.cc[data-video='clip-1-video']")
    assert toggle.is_visible() and toggle.get_attribute("aria-pressed") == "false"
    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "true" and toggle.inner_text().startswith("Hide")
    video = p.locator("#clip-1-video")
    video.evaluate("v => { v.currentTime = 1.0; }")
    p.wait_for_function(
        "() => { const t = document.getElementById('clip-1-video').textTracks[0];"
        " return t.mode === 'showing' && t.activeCues && t.activeCues.length > 0; }"
    )
    others = p.evaluate(
        "() => [...document.querySelectorAll('video:not(#clip-1-video)')].map("
        "(v) => v.textTracks[0].mode)"
    )
    assert others == ["hidden", "hidden"]  # one clip's switch, not the page's
    toggle.click()
    assert video.evaluate("v => v.textTracks[0].mode") == "hidden"
    assert toggle.get_attribute("aria-pressed") == "false"
    assert errors == []


def test_transcript_names_the_speaker_at_each_turn(
    page: tuple[Page, list[str]], report: dict[str, Any]
) -> None:
    p, _ = page
    lines = p.locator(".transcript button.seg")
    starts = [
        float(lines.nth(i).get_attribute("data-start") or "nan") for i in range(lines.count())
    ]
    words = [w for s in report["transcript"]["segments"] for w in s["words"]]
    turns = [w for i, w in enumerate(words) if i == 0 or w["speaker"] != words[i - 1]["speaker"]]
    # one line per turn, the segment that spans a turn cut in two at the turn's first word
    assert starts == [round(t["start"], 3) for t in turns]
    labels = p.locator(".transcript .spk")
    assert labels.all_inner_texts() == [f"Speaker {t['speaker'] + 1}:" for t in turns]
    assert len(set(labels.all_inner_texts())) == 2
    assert all(labels.nth(i).is_visible() for i in range(labels.count()))
    assert lines.nth(1).inner_text().startswith("0:06 Speaker 2: I grew up")
    colours = {labels.nth(i).evaluate("el => getComputedStyle(el).borderLeftColor") for i in (0, 1)}
    assert len(colours) == 2  # each speaker's own colour


def test_cards_use_words_not_model_names(
    page: tuple[Page, list[str]], report: dict[str, Any]
) -> None:
    p, _ = page
    shown = p.evaluate("document.body.innerText")
    assert MODEL not in shown and MODEL_VERSION not in shown
    assert all(c["model"] == MODEL for c in report["clips"])  # clips.json keeps it
    card = p.locator("#clip-1").inner_text()
    assert "Framing: follows whoever is speaking" in card


def test_clip_posters_are_the_clip_thumbnails(
    page: tuple[Page, list[str]], report: dict[str, Any]
) -> None:
    p, _ = page
    for clip in (c for c in report["clips"] if c["export_status"] == "ready"):
        video = p.locator(f"#clip-{clip['rank']}-video")
        assert video.get_attribute("poster") == clip["files"]["thumbnail"]
        size = video.evaluate(
            """(v) => new Promise((ok) => { const img = new Image();
              img.onload = () => ok([img.naturalWidth, img.naturalHeight]);
              img.onerror = () => ok([0, 0]); img.src = v.poster; })"""
        )
        assert size[0] > 0 and size[1] > 0, clip["files"]["thumbnail"]


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
