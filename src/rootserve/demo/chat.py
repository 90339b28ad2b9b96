"""The demo's chat room: a page at `/chat` and a WebSocket at `/chat/ws`, plain ASGI.

Every text message a client sends goes to everyone in the room, its sender included, as
`guest-N: text`; joins and leaves are announced. It shows the `websocket` scope's whole
conversation: `websocket.connect`, `websocket.accept`, `websocket.receive` and
`websocket.send`, then `websocket.disconnect`.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Final

from rootserve.types import Receive, Scope, Send

__all__ = ["PAGE", "Room", "room"]

MAX_CHARS: Final = 500  # a longer message is cut (the server's own limit is --ws-max-size)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rootserve demo: chat</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}
#log{border:1px solid #ccc;height:18rem;overflow-y:auto;padding:.5rem;white-space:pre-wrap}
form{display:flex;gap:.5rem;margin-top:.5rem}input{flex:1}</style></head>
<body><h1>Chat over a WebSocket</h1>
<p>Open this page in two tabs: what you type goes to every tab through the server.</p>
<div id="log"></div>
<form id="form"><input id="text" autocomplete="off" placeholder="Say something">
<button>Send</button></form>
<p><a href="/">back</a></p>
<script>
const log = document.getElementById("log");
const show = (line) => { log.textContent += line + "\\n"; log.scrollTop = log.scrollHeight; };
const scheme = location.protocol === "https:" ? "wss" : "ws";
const socket = new WebSocket(`${scheme}://${location.host}${location.pathname}/ws`);
socket.onopen = () => show("(connected)");
socket.onmessage = (event) => show(event.data);
socket.onclose = (event) => show(`(closed: ${event.code} ${event.reason})`);
document.getElementById("form").onsubmit = (event) => {
  event.preventDefault();
  const input = document.getElementById("text");
  if (input.value && socket.readyState === WebSocket.OPEN) socket.send(input.value);
  input.value = "";
};
</script>
</body></html>
"""


class Room:
    """The clients connected now, by name, each with its `send`."""

    def __init__(self) -> None:
        self.members: dict[str, Send] = {}
        self._numbers = itertools.count(1)

    async def broadcast(self, text: str) -> None:
        for send in list(self.members.values()):
            # OSError: that client has gone; its own session removes it.
            with contextlib.suppress(OSError):
                await send({"type": "websocket.send", "text": text})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        name = f"guest-{next(self._numbers)}"
        self.members[name] = send
        await self.broadcast(f"* {name} joined ({len(self.members)} here)")
        try:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    return  # websocket.disconnect: the member left
                text = message.get("text")
                if text is None:
                    text = f"({len(message.get('bytes') or b'')} bytes)"
                await self.broadcast(f"{name}: {text[:MAX_CHARS]}")
        finally:
            del self.members[name]
            await self.broadcast(f"* {name} left")


room = Room()
