"""`/docs` and `/redoc` render in a real browser with no network but loopback.

The standalone app runs under uvicorn on a free loopback port (the same `create_app` as
`clipforge api`); headless Debian Chromium, driven by Playwright, loads the pages with every
non-loopback request blocked and recorded, so a CDN asset that slipped back in fails the test
instead of silently rendering a blank page offline.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from serve_apps.api.app import create_app
from serve_apps.api.deps import ApiDeps
from tests.utils.servers import app_in_thread

pytestmark = pytest.mark.slow

_LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


@pytest.fixture(scope="module")
def api_url(api_deps: ApiDeps) -> Iterator[str]:
    """The standalone app served over real HTTP from a thread of this process."""
    with app_in_thread(create_app(api_deps)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium (Playwright's own browser downloads are not used)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


class OfflinePage:
    """A page that aborts every non-loopback request and records console errors."""

    def __init__(self, browser: object) -> None:
        from playwright.sync_api import Browser, ConsoleMessage, Route

        assert isinstance(browser, Browser)
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.context = browser.new_context()

        def guard(route: Route) -> None:
            url = route.request.url
            host = urlsplit(url).hostname or ""
            if url.startswith(("data:", "blob:")) or host in _LOOPBACK:
                route.continue_()
            else:
                self.blocked.append(url)
                route.abort()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.console_errors.append(message.text)

        self.context.route("**/*", guard)
        self.page = self.context.new_page()
        self.page.on("console", on_console)
        self.page.on("pageerror", lambda exc: self.console_errors.append(str(exc)))


@pytest.fixture()
def offline(browser: object) -> Iterator[OfflinePage]:
    """A fresh offline page per test."""
    page = OfflinePage(browser)
    yield page
    page.context.close()


def test_root_points_to_the_docs(api_url: str):
    body = httpx.get(f"{api_url}/").json()
    assert body["docs"] == "/docs"
    assert body["redoc"] == "/redoc"
    assert body["openapi"] == "/openapi.json"
    assert body["health"] == "/health"
    for path in ("docs", "redoc", "openapi", "health"):
        assert httpx.get(f"{api_url}{body[path]}").status_code == 200


def test_docs_pages_reference_only_local_assets(api_url: str):
    for path in ("/docs", "/redoc"):
        html = httpx.get(f"{api_url}{path}").text
        assert "cdn." not in html and "fonts.googleapis" not in html, html
    bundle = httpx.get(f"{api_url}/static/docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text[:1000]
    redoc = httpx.get(f"{api_url}/static/redoc/redoc.standalone.js")
    assert redoc.status_code == 200 and redoc.headers["content-type"].startswith("text/javascript")
    assert "Redoc" in redoc.text[:1000] and "cdn.redoc.ly" not in redoc.text


def test_swagger_ui_renders_offline(api_url: str, offline: OfflinePage):
    offline.page.goto(f"{api_url}/docs")
    operation = offline.page.locator(".opblock", has_text="/v1/videos").first
    operation.wait_for(state="visible", timeout=30_000)
    assert offline.page.locator(".opblock").count() > 5
    assert offline.blocked == []
    assert offline.console_errors == []


def test_redoc_renders_offline(api_url: str, offline: OfflinePage):
    offline.page.goto(f"{api_url}/redoc")
    # ReDoc renders each operation's summary (FastAPI derives it from the function name) as a
    # heading of its own section.
    heading = offline.page.locator("h2", has_text="Create Video").first
    heading.wait_for(state="visible", timeout=30_000)
    assert "ClipForge API" in offline.page.locator(".api-info").inner_text()
    assert offline.blocked == []
    assert offline.console_errors == []
