"""Chapter 6: await a FastAPI app the way an ASGI server does; no socket, no HTTP, no server."""

import asyncio

from ch6_apps import fastapi_app


def make_scope(method, path, query=b""):
    """What a server would build from the request's head (ASGI HTTP spec, "HTTP Connection
    Scope"). Header names are lower-case bytes; the body does not come in the scope."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def call(method, path, query=b"", body=b""):
    print(f"-- {method} {path}" + (f"?{query.decode()}" if query else ""))
    # The body as the events a server would pass on: here one piece, then the client leaves.
    incoming = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        message = incoming.pop(0) if incoming else {"type": "http.disconnect"}
        print(f"receive() -> {message!r}")
        return message

    async def send(message):
        # A server would turn these into the status line, header fields and body bytes.
        print(f"send({message!r})")

    await fastapi_app(make_scope(method, path, query), receive, send)
    print("the app's call returned")


async def main():
    await call("GET", "/greet", b"name=Ada")
    await call("POST", "/echo", body=b"ping")
    await call("GET", "/missing")


asyncio.run(main())
