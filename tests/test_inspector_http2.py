"""The inspector and HTTP/2: a block of a request on an HTTP/2 stream reaches a watching
page with its stream (in memory), and the page shows it in the conversation's heading
(Debian's Chromium, headless, driven by Playwright, on the page the demo serves, for a
request made with httpx over HTTP/2 and one over HTTP/1.1)."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import httpx
import pytest
from tests.e2e.workers_support import supervisor

from rootserve.demo import inspector
from rootserve.protocol.exchange import STREAM_EXTENSION
from rootserve.types import Receive, Scope, Send

CHROMIUM = shutil.which("chromium")
WAIT_MS = 15_000


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


def test_a_block_of_an_http2_stream_carries_the_stream() -> None:
    async def run() -> dict[str, Any]:
        app = inspector.Inspector(hello)
        queue = app.hub.subscribe()
        scope: dict[str, Any] = {
            "type": "http", "http_version": "2", "method": "GET", "path": "/x",
            "root_path": "", "headers": [(b"x-request-id", b"h2-block")],
            "extensions": {STREAM_EXTENSION: {"stream_id": 7}},
        }  # fmt: skip
        sent: list[Any] = []

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        await app(scope, receive, send)
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        return json.loads(queue.get_nowait())  # type: ignore[no-any-return]

    block = asyncio.run(run())
    assert (block["id"], block["stream"]) == ("h2-block", 7)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test does)")
def test_the_page_shows_the_stream_of_an_http2_request() -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with supervisor() as running, sync_api.sync_playwright() as playwright:
        url = f"http://127.0.0.1:{running.port}"
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url + "/inspector")
            # A locator assertion: a polled wait_for_function needs eval, which the CSP refuses.
            sync_api.expect(page.locator("#status")).to_have_text("connected", timeout=WAIT_MS)
            # The demo serves HTTP/1.1 and HTTP/2 on one port (--http auto, the default).
            with httpx.Client(http1=False, http2=True, timeout=10) as client:
                reply = client.get(url + "/api/info?over=h2", headers={"X-Request-ID": "h2-card"})
                assert reply.http_version == "HTTP/2"
            with httpx.Client(timeout=10) as client:
                client.get(url + "/api/info?over=h1", headers={"X-Request-ID": "h1-card"})
            h2_card = page.locator("section.conversation", has_text="h2-card").first
            h2_card.wait_for(timeout=WAIT_MS)
            assert h2_card.locator("h2 .badge.h2").inner_text() == "h2 stream 1"
            h1_card = page.locator("section.conversation", has_text="h1-card").first
            h1_card.wait_for(timeout=WAIT_MS)
            assert h1_card.locator(".badge.h2").count() == 0
            assert errors == []
        finally:
            browser.close()
        assert running.stop() == 0
