"""The studio page in Debian's Chromium (Playwright): drag a clip edge, correct a word, export,
download the result and check it.

Everything is real and local: `speech_short` uploaded to the standalone app under uvicorn on a
loopback port, stored in a local folder (the embedded default, so the page's media go through
the API, never file://), run through the real worker (import, ASR, detect, export), with every
non-loopback request of the page blocked and recorded. Words are read from the API, not assumed.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clipforge.db.pool import Pool
from clipforge.media.probe import probe
from clipforge.settings import Settings
from clipforge.studio import running_studio
from pipelines.config import PipelineConfig
from pipelines.engine.worker import PipelineWorker
from serve_apps.api.app import create_app
from serve_apps.api.deps import ApiDeps
from tests.pipelines.conftest import pipeline_config  # noqa: F401
from tests.serve_apps.test_docs_browser import OfflinePage, browser  # noqa: F401
from tests.utils.factories import make_key
from tests.utils.servers import app_in_thread

pytestmark = pytest.mark.slow

CORRECTION = "Zorblax"  # a word no recogniser hears in this speech


@pytest.fixture(scope="module")
def local_settings(
    settings: Settings, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Local-folder media (the embedded default), with room for the page's polling."""
    return settings.model_copy(
        update={
            "s3_bucket": None,
            "local_storage_dir": tmp_path_factory.mktemp("studio-media"),
            "redis_url": redis_url,
            "rate_limit_per_minute": 6000,
            "rate_limit_burst": 500,
        }
    )


@pytest.fixture(scope="module")
def studio_url(local_settings: Settings, database_url: str) -> Iterator[str]:
    """`create_app` under uvicorn in a thread of this process, as `clipforge api` serves it."""
    deps = ApiDeps.open(
        local_settings, database_url=database_url, redis_prefix=f"cftest:{uuid.uuid4().hex[:8]}:"
    )
    with app_in_thread(create_app(deps, close_deps=True)) as url:
        yield url


@pytest.fixture()
def local_worker(
    db: Pool,
    local_settings: Settings,
    pipeline_config: PipelineConfig,  # noqa: F811
    database_url: str,
    ray_local: None,
) -> Iterator[PipelineWorker]:
    """The pipeline worker on the same local folder as the API (one machine, like `process`)."""
    worker = PipelineWorker(
        local_settings, pipeline_config, db, database_url=database_url, worker_id="studio-worker"
    )
    yield worker
    worker.close()


def _bare(text: str) -> str:
    return re.sub(r"[^a-z']", "", text.lower())


def _until(page: Any, expression: str, timeout_s: float = 30.0) -> None:
    """Wait until `expression` is true in the page. Playwright's `wait_for_function` evaluates
    strings with eval, which the page's CSP (rightly) refuses; `evaluate` goes through CDP."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(50)


def _download(offline: OfflinePage, link: str, dest: Path) -> Path:
    with offline.page.expect_download() as info:
        offline.page.locator(link).first.click()
    info.value.save_as(dest)
    return dest


def test_drag_correct_export_and_download(
    db: Pool,
    studio_url: str,
    local_worker: PipelineWorker,
    browser: object,  # noqa: F811
    test_media: dict[str, Path],
    tmp_path: Path,
) -> None:
    _, raw = make_key(db, "studio")
    api = httpx.Client(base_url=studio_url, headers={"Authorization": f"Bearer {raw}"})
    upload = api.post(
        "/v1/videos/upload",
        content=test_media["speech_short"].read_bytes(),
        headers={"Content-Type": "video/mp4"},
    )
    assert upload.status_code == 202, upload.text
    video_id = upload.json()["video"]["id"]
    local_worker.run(until_idle=True)
    clip = min(api.get(f"/v1/videos/{video_id}/clips").json()["items"], key=lambda c: c["rank"])
    words: list[dict[str, Any]] = api.get(f"/v1/clips/{clip['id']}/words").json()["words"]
    cut = next(i for i, w in enumerate(words) if w["text"].endswith(".")) + 1
    first_sentence, rest = words[:cut], words[cut:]
    assert rest, "the clip should hold more than one sentence"

    # What `clipforge process --studio` links its report to while this server runs.
    assert running_studio(studio_url, video_id) == f"{studio_url}/studio/videos/{video_id}"

    offline = OfflinePage(browser)
    page = offline.page
    try:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{studio_url}/studio/videos/{video_id}#key={raw}")
        start_handle = page.locator(".handle.start")
        start_handle.wait_for(timeout=30_000)
        assert "key=" not in page.url  # the key left the address bar
        assert not page.locator("#key-form").is_visible()  # nothing left to ask
        # The source plays from the API (local storage, Range requests).
        _until(page, "document.getElementById('source').readyState >= 1")

        # Drag the start into the pause after the first sentence.
        wanted = (first_sentence[-1]["end"] + rest[0]["start"]) / 2
        line = page.locator("#timeline").bounding_box()
        grip = start_handle.bounding_box()
        assert line is not None and grip is not None
        duration = float(page.evaluate("document.getElementById('source').duration"))
        x = line["x"] + line["width"] * wanted / duration
        y = grip["y"] + grip["height"] / 2
        page.mouse.move(grip["x"] + grip["width"] / 2, y)
        page.mouse.down()
        page.mouse.move(x, y, steps=8)
        assert "release to snap" in page.locator("#bounds").inner_text()  # shown while dragging
        page.mouse.up()
        _until(
            page,
            f"Number(document.getElementById('bounds').dataset.start) > {first_sentence[-1]['end']}",
        )
        edited = api.get(f"/v1/clips/{clip['id']}").json()
        assert edited["edited"] is True and edited["end_s"] == clip["end_s"]
        assert first_sentence[-1]["end"] < edited["start_s"] <= rest[0]["start"]
        assert float(page.locator("#bounds").get_attribute("data-start") or 0) == edited["start_s"]
        assert start_handle.get_attribute("aria-valuenow") == f"{edited['start_s']:.1f}"

        # Correct a word of what is left.
        target = next(w for w in rest if len(_bare(w["text"])) >= 4)
        box = page.locator(f'input.word[data-index="{target["index"]}"]')
        # The page redraws the word list after the edit's answer: wait for it.
        _until(page, f"document.querySelectorAll('input.word').length === {len(rest)}")
        box.fill(CORRECTION)
        box.press("Enter")
        page.get_by_text("Captions saved (1 correction)").wait_for()
        assert "corrected" in (box.get_attribute("class") or "")

        # Export 1:1 and wait for it: the worker renders while the page polls.
        page.select_option("#opt-aspect", "1:1")
        page.click("#export-btn")
        page.locator(".export").first.wait_for()
        local_worker.run(until_idle=True)
        page.locator('.export[data-status="ready"]').wait_for(timeout=30_000)

        clip_file = _download(offline, ".export a:text-is('MP4')", tmp_path / "clip.mp4")
        assert abs(probe(clip_file).duration_s - (edited["end_s"] - edited["start_s"])) < 0.2
        dropped = [
            _bare(w["text"])
            for w in first_sentence
            if _bare(w["text"]) not in {_bare(r["text"]) for r in rest}
        ]
        assert dropped
        for kind, label in (("vtt", "WebVTT"), ("srt", "SRT")):
            text = _download(offline, f".export a:text-is('{label}')", tmp_path / f"c.{kind}")
            captions = text.read_text("utf-8").lower()
            assert CORRECTION.lower() in captions, kind
            assert not re.search(rf"\b{_bare(target['text'])}\b", captions), kind
            assert not any(re.search(rf"\b{w}\b", captions) for w in dropped), kind

        # Keyboard: an arrow on the end handle moves the end a word earlier, snapped.
        page.locator(".handle.end").focus()
        page.keyboard.press("ArrowLeft")
        _until(page, f"Number(document.getElementById('bounds').dataset.end) < {edited['end_s']}")
        assert api.get(f"/v1/clips/{clip['id']}").json()["end_s"] < edited["end_s"]

        # Phone width: nothing overflows sideways, the handles stay on screen.
        page.set_viewport_size({"width": 375, "height": 800})
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        for edge in ("start", "end"):
            handle_box = page.locator(f".handle.{edge}").bounding_box()
            assert handle_box is not None and 0 <= handle_box["x"] <= 375 - handle_box["width"] / 2
        assert offline.blocked == []
        assert offline.console_errors == []
    finally:
        offline.context.close()
        api.close()
