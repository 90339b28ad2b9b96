"""Chapter 5: play the server's part: call ch5_app with scopes and messages made by hand.

`converse` calls an ASGI app once. Its receive() takes the next message from a queue,
waiting while the queue is empty, as a server's receive() waits for the client; its
send() prints each message the app sends, and puts it on a second queue when asked to.
"""

import asyncio

from ch5_app import app


async def converse(app, scope, inbox, outbox=None):
    """Call `app` with `scope`, receive() reading from the queue `inbox`; print it all."""

    async def receive():
        message = await inbox.get()
        print(f"  receive() -> {message}")
        return message

    async def send(message):
        print(f"  send({message})")
        if outbox is not None:
            outbox.put_nowait(message)

    print(f"app({scope['type']} scope, receive, send)")
    result = await app(scope, receive, send)
    print(f"  returned {result}")


def inbox_of(*messages):
    inbox = asyncio.Queue()
    for message in messages:
        inbox.put_nowait(message)
    return inbox


def http_scope(method, path, state, body=b""):
    """An HTTP scope with the keys a server sends (ch5_app reads only a few of them)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("ascii"),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.test"), (b"content-length", b"%d" % len(body))],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "state": dict(state),  # a shallow copy, as a server makes for every request
    }


async def main():
    state = {}  # the server keeps this dict for as long as its event loop runs
    lifespan_inbox = inbox_of({"type": "lifespan.startup"})
    lifespan_scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
    lifespan_outbox = asyncio.Queue()
    lifespan = asyncio.create_task(converse(app, lifespan_scope, lifespan_inbox, lifespan_outbox))
    await lifespan_outbox.get()  # requests wait until the app says startup is complete
    print(f"state after startup: {state}\n")

    request = {"type": "http.request", "body": b"", "more_body": False}
    await converse(app, http_scope("GET", "/", state), inbox_of(request))
    print()
    parts = [
        {"type": "http.request", "body": b"ping, ", "more_body": True},
        {"type": "http.request", "body": b"pong", "more_body": False},
    ]
    await converse(app, http_scope("POST", "/echo", state, b"ping, pong"), inbox_of(*parts))
    print()
    ws_scope = {**http_scope("GET", "/ws", state), "type": "websocket", "scheme": "ws"}
    del ws_scope["method"]  # a WebSocket scope has no method
    messages = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hi"},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    await converse(app, ws_scope, inbox_of(*messages))
    print()

    print("(the server is stopping)")
    lifespan_inbox.put_nowait({"type": "lifespan.shutdown"})
    await lifespan


if __name__ == "__main__":
    asyncio.run(main())
