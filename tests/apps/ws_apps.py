"""Plain ASGI apps for the WebSocket tests, one per path, and what they saw.

Each app records the messages it received under the `token` query parameter (or the path
when there is none) in `SEEN`, and sets the token's `Event` in `DONE` when its call ends, so
a test can wait for the app's side of a session to finish (bounded) before checking it.
Calls to any path count in `CALLS`, so a test can check the app was never reached.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import defaultdict

from rootserve.types import Message, Receive, Scope, Send

__all__ = ["CALLS", "DONE", "SEEN", "app", "lifespan_app", "wait_done"]

SEEN: dict[str, list[Message]] = defaultdict(list)
DONE: dict[str, threading.Event] = defaultdict(threading.Event)
CALLS: dict[str, int] = defaultdict(int)
_LOCK = threading.Lock()


def wait_done(token: str, timeout: float = 10.0) -> list[Message]:
    """What the app received under `token`, once its call has ended."""
    with _LOCK:
        event = DONE[token]
    assert event.wait(timeout), f"the app for {token!r} did not finish"
    return SEEN[token]


def _token(scope: Scope) -> str:
    for part in scope["query_string"].decode().split("&"):
        name, _, value = part.partition("=")
        if name == "token":
            return value
    return str(scope["path"])


async def _receive_all(token: str, receive: Receive) -> Message:
    """Record messages until a disconnect; return it."""
    while True:
        message = await receive()
        SEEN[token].append(message)
        if message["type"] == "websocket.disconnect":
            return message


async def echo(scope: Scope, receive: Receive, send: Send, token: str) -> None:
    """Echo text and bytes; `close CODE REASON` makes the app close with that code."""
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        SEEN[token].append(message)
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None and text.startswith("close "):
            _, code, reason = (text + " ").split(" ", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason.strip()})
            SEEN[token].append(await receive())  # the disconnect, once the client answered
            return
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def scope_json(scope: Scope, receive: Receive, send: Send, token: str) -> None:
    """Accept (choosing `chat.v2` when offered) and send the scope as JSON."""
    offered = scope["subprotocols"]
    choice = "chat.v2" if "chat.v2" in offered else None
    await send(
        {"type": "websocket.accept", "subprotocol": choice, "headers": [(b"x-extra", b"yes")]}
    )
    shown = {
        key: value.decode("latin-1") if isinstance(value, bytes) else value
        for key, value in scope.items()
        if key not in ("headers", "state", "asgi")
    }
    shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
    shown["asgi"] = scope["asgi"]
    shown["state"] = scope.get("state")
    await send({"type": "websocket.send", "text": json.dumps(shown)})
    await _receive_all(token, receive)


async def deny(scope: Scope, receive: Receive, send: Send, token: str) -> None:
    """The denial response extension: 403 with a body in two pieces."""
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"text/plain"), (b"x-reason", b"no entry")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"away"})
    SEEN[token].append(await receive())


async def close_first(scope: Scope, receive: Receive, send: Send, token: str) -> None:
    await send({"type": "websocket.close", "code": 1000})
    SEEN[token].append(await receive())


async def raise_before(scope: Scope, receive: Receive, send: Send, token: str) -> None:
    raise RuntimeError("boom before accept")


async def raise_after(scope: Scope, receive: Receive, send: Send, token: str) -> None:
    await send({"type": "websocket.accept"})
    await receive()
    raise RuntimeError("boom after accept")


async def return_open(scope: Scope, receive: Receive, send: Send, token: str) -> None:
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "bye"})


async def bad_subprotocol(scope: Scope, receive: Receive, send: Send, token: str) -> None:
    await send({"type": "websocket.accept", "subprotocol": "never-offered"})


async def wait(scope: Scope, receive: Receive, send: Send, token: str) -> None:
    """Accept, say `ready`, then wait for the end of the session."""
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "ready"})
    await _receive_all(token, receive)


async def slow_reader(scope: Scope, receive: Receive, send: Send, token: str) -> None:
    """Accept, then read nothing until told to through `RELEASE`."""
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "ready"})
    await asyncio.get_running_loop().run_in_executor(None, RELEASE[token].wait, 10)
    await _receive_all(token, receive)


RELEASE: dict[str, threading.Event] = defaultdict(threading.Event)

ROUTES = {
    "/echo": echo,
    "/scope": scope_json,
    "/deny": deny,
    "/close-first": close_first,
    "/raise-before": raise_before,
    "/raise-after": raise_after,
    "/return-open": return_open,
    "/bad-subprotocol": bad_subprotocol,
    "/wait": wait,
    "/slow-reader": slow_reader,
}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        # What a handshake becomes when it is not switched (--ws off): a plain request.
        CALLS["http"] += 1
        body = json.dumps({"type": "http", "path": scope["path"]}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] == "lifespan":
        return  # no lifespan support: serving goes on without it
    assert scope["type"] == "websocket", scope["type"]
    path = scope["path"][len(scope["root_path"]) :]
    CALLS[path] += 1
    token = _token(scope)
    connect = await receive()
    assert connect == {"type": "websocket.connect"}, connect
    try:
        await ROUTES[path](scope, receive, send, token)
    finally:
        with _LOCK:
            DONE[token].set()


async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
    """`app` with lifespan state, to check that a websocket scope carries a copy of it."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hello"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await app(scope, receive, send)
