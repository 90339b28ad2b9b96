"""Chapter 5: an ASGI app with no framework: HTTP, a WebSocket echo, and lifespan.

One async callable, `app(scope, receive, send)`, answers all three kinds of conversation;
scope["type"] says which one each call is.
"""


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
    elif scope["type"] == "http":
        await http(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket(scope, receive, send)


async def lifespan(scope, receive, send):
    """Startup and shutdown: once per event loop, before the first request and after the last."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # The server copies this dict into every request's scope (a shallow copy), so
            # the requests share the inner dict: a pool or a client would be stored this way.
            scope["state"]["counter"] = {"requests": 0}
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive):
    """The whole request body, which may arrive in several http.request messages."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None  # the client has gone; there is nobody to answer
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def respond(send, status, text):
    body = text.encode("utf-8")
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def http(scope, receive, send):
    body = await read_body(receive)
    if body is None:
        return
    route = (scope["method"], scope["path"])
    if route == ("GET", "/"):
        counter = scope["state"]["counter"]
        counter["requests"] += 1
        await respond(send, 200, f"Hello from ASGI! Request {counter['requests']} since startup.\n")
    elif route == ("POST", "/echo"):
        await respond(send, 200, body.decode("utf-8", "replace") + "\n")
    else:
        await respond(send, 404, f"Nothing at {scope['method']} {scope['path']}\n")


async def websocket(scope, receive, send):
    """Accept, then echo each text message until the client closes."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": f"echo: {message['text']}"})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
