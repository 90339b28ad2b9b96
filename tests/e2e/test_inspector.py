"""The live inspector in a real browser: Debian's Chromium, headless, driven by Playwright.

The demo app runs as `rootserve` does for a user; the page connects to its feed; requests
made from the page (ASGI, a streamed one, the mounted WSGI app) and one made with curl
appear with their scope or environ and messages, each linked to its chapter; a path that
carries HTML shows as text. A screenshot is written to build/test-artifacts/inspector.png.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from tests.e2e.workers_support import supervisor
from tests.helpers import ROOT

pytestmark = pytest.mark.slow

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
SCREENSHOT = ROOT / "build" / "test-artifacts" / "inspector.png"
WAIT_MS = 15_000


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test does)")
def test_requests_show_live_with_their_messages() -> None:
    with supervisor() as running:
        url = f"http://127.0.0.1:{running.port}"
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
            )
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 1400})
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(url + "/inspector")
                wait_until_connected(page)
                check_the_page(page, url)
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT), full_page=True)
                print(f"inspector screenshot: {SCREENSHOT}")
                assert errors == []
            finally:
                browser.close()
        assert running.stop() == 0
    assert SCREENSHOT.stat().st_size > 10_000


def wait_until_connected(page: Any) -> None:
    """Wait for the page's event stream. A locator assertion, not `wait_for_function`: a
    string predicate that is not true at once is polled by evaluating it in the page, which
    the inspector's Content-Security-Policy (no 'unsafe-eval') refuses, so on a loaded
    machine the wait failed with an EvalError instead of waiting."""
    sync_api.expect(page.locator("#status")).to_have_text("connected", timeout=WAIT_MS)


def card(page: Any, title: str) -> Any:
    """The conversation whose heading contains `title`, once it is on the page."""
    locator = page.locator("section.conversation", has_text=title).first
    locator.wait_for(timeout=WAIT_MS)
    return locator


def check_the_page(page: Any, url: str) -> None:
    # ASGI, from the page: the scope, the messages, each linked to chapter 5.
    page.get_by_role("button", name="GET /api/info (ASGI)").click()
    info = card(page, "GET /api/info")
    info.locator("tr.send", has_text="http.response.start").wait_for(timeout=WAIT_MS)
    assert 'method="GET"' in info.locator("tr.scope").inner_text()
    assert info.locator("tr.send a").first.get_attribute("href") == (
        "/docs/guide/05-an-asgi-app-and-the-servers/#an-http-request-as-events"
    )
    assert "returned" in info.locator("tr.returned").inner_text()

    # A streamed body: each part a message of its own.
    page.get_by_role("button", name="GET /stream (ASGI, streamed)").click()
    stream = card(page, "GET /stream")
    stream.locator("tr.returned").wait_for(timeout=WAIT_MS)
    assert stream.locator("tr.send", has_text="more_body=True").count() == 5

    # WSGI, mounted in the ASGI app: its environ and start_response inside the block.
    page.get_by_role("button", name="POST /wsgi/echo (WSGI, with a body)").click()
    echo = card(page, "POST /wsgi/echo")
    echo.locator("tr.close").wait_for(timeout=WAIT_MS)
    assert 'PATH_INFO="/echo"' in echo.locator("tr.environ").inner_text()
    assert "200 OK" in echo.locator("tr.start_response").inner_text()
    assert echo.locator("tr.start_response a").get_attribute("href") == (
        "/docs/guide/01-what-wsgi-is/#what-the-application-promises"
    )

    # From outside the page: curl. A path that carries HTML is shown as text.
    for target in ("/api/info?from=curl", "/%3Cimg%20src=x%20onerror=alert(1)%3E"):
        done = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url + target],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert done.stdout in ("200", "404")
    curl = card(page, "GET /api/info")
    curl.page.locator("tr.scope", has_text="from=curl").wait_for(timeout=WAIT_MS)
    card(page, "<img src=x onerror=alert(1)>")
    assert page.locator("section.conversation img").count() == 0
