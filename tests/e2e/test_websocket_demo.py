"""The demo app's chat room: messages reach every member, joins and leaves are announced."""

from __future__ import annotations

import httpx
import pytest
from tests.helpers import serve
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from rootserve.demo.app import app

TIMEOUT = 10


def test_demo_chat_room() -> None:
    with serve(app) as running:
        page = httpx.get(running.url + "/chat")
        assert page.status_code == 200
        assert "new WebSocket" in page.text
        url = f"ws://127.0.0.1:{running.port}/chat/ws"
        with connect(url, proxy=None) as first:
            joined = first.recv(TIMEOUT)
            assert isinstance(joined, str) and joined.endswith("joined (1 here)")
            name = joined.split()[1]
            with connect(url, proxy=None) as second:
                assert second.recv(TIMEOUT).endswith("joined (2 here)")
                assert first.recv(TIMEOUT).endswith("joined (2 here)")
                first.send("hello room")
                assert first.recv(TIMEOUT) == f"{name}: hello room"
                assert second.recv(TIMEOUT) == f"{name}: hello room"
            assert first.recv(TIMEOUT).endswith("left")
        with pytest.raises(InvalidStatus) as caught:
            connect(f"ws://127.0.0.1:{running.port}/elsewhere", proxy=None)
        assert caught.value.response.status_code == 403
