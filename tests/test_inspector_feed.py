"""The inspector's feed, in memory (rootserve.testing): blocks reach a watching page, only
while one watches, never for the inspector's own paths; a slow page loses its oldest
blocks; a block written on an app thread reaches the loop's thread."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path

from rootserve.demo import inspector
from rootserve.demo.app import app as demo_app
from rootserve.demo.app import routes
from rootserve.testing import Client


def test_a_watching_page_gets_each_block_as_json() -> None:
    with Client(demo_app) as client, client.websocket_connect("/inspector/feed") as feed:
        assert client.get("/api/info", headers={"X-Request-ID": "seen-1"}).status == 200
        block = json.loads(feed.receive_text())
        assert (block["id"], block["method"], block["path"]) == ("seen-1", "GET", "/api/info")
        steps = [event["event"] for event in block["events"]]
        assert steps == ["scope", "send", "send", "returned"]
        assert client.post("/wsgi/echo", body=b"a=1").status == 200
        mounted = json.loads(feed.receive_text())
        assert "environ" in [e["event"] for e in mounted["events"] if e.get("contract") == "wsgi"]


def test_nothing_is_traced_without_a_page_nor_for_the_inspector_itself() -> None:
    app = inspector.Inspector(routes)
    written: list[str] = []
    app.hub.publish = written.append  # type: ignore[method-assign]
    with Client(app) as client:
        client.get("/api/info")
        page = client.get("/inspector")
        assert page.status == 200 and b"rootserve inspector" in page.body
        assert "script-src 'unsafe-inline'" in (page.header("content-security-policy") or "")
    assert written == []


def test_a_slow_page_loses_its_oldest_blocks() -> None:
    async def run() -> list[str]:
        hub = inspector.Hub()
        queue = hub.subscribe()
        for n in range(inspector.QUEUE_BLOCKS + 3):
            hub.publish(str(n))
        return [queue.get_nowait() for _ in range(queue.qsize())]

    kept = asyncio.run(run())
    assert len(kept) == inspector.QUEUE_BLOCKS
    assert kept[0] == "3" and kept[-1] == str(inspector.QUEUE_BLOCKS + 2)


def test_a_block_from_an_app_thread_is_delivered_on_the_loop() -> None:
    async def run() -> tuple[str, bool]:
        hub = inspector.Hub()
        queue = hub.subscribe()
        thread = threading.Thread(target=hub.publish, args=("from a thread",))
        thread.start()
        thread.join()
        block = await asyncio.wait_for(queue.get(), 5)
        return block, threading.current_thread() is threading.main_thread()

    assert asyncio.run(run()) == ("from a thread", True)


def test_every_link_of_the_page_names_a_section_of_the_guide() -> None:
    """The page links each step to a section (page#anchor): each must be a heading of that
    chapter, as mkdocs makes its anchor, so renaming a heading fails here."""
    root = Path(__file__).resolve().parent.parent / "docs" / "guide"
    page = (Path(inspector.__file__).parent / "inspector.html").read_text(encoding="utf-8")
    pages = dict(re.findall(r'(\d): \["(\d\d-[a-z0-9-]+)/"', page))
    links = re.findall(r'\[(\d), "([a-z0-9_-]+)"\]', page)
    links += [("5", anchor) for anchor in re.findall(r'^  \w+: "([a-z0-9-]+)",$', page, re.M)]
    assert len(links) >= 10
    for chapter, anchor in links:
        text = (root / f"{pages[chapter]}.md").read_text(encoding="utf-8")
        slugs = {
            re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", heading.lower()).strip())
            for heading in re.findall(r"^#{2,3} (.+)$", text, re.M)
        }
        assert anchor in slugs, f"{pages[chapter]}.md has no section #{anchor}"
