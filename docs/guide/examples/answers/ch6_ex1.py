"""Chapter 6, exercise 1: a request body that reaches a FastAPI app in two pieces."""

import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.post("/echo", response_class=PlainTextResponse)
async def echo(request: Request):
    data = await request.body()  # every piece, joined: Starlette calls receive() for each
    return f"You posted {len(data)} bytes: {data.decode('utf-8', 'replace')}\n"


SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/echo",
    "raw_path": b"/echo",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"transfer-encoding", b"chunked")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


async def main():
    # What a server passes on when a chunked body arrives in two reads from the socket.
    pieces = [
        {"type": "http.request", "body": b"ping ", "more_body": True},
        {"type": "http.request", "body": b"pong", "more_body": False},
    ]

    async def receive():
        message = pieces.pop(0) if pieces else {"type": "http.disconnect"}
        print(f"receive() -> {message!r}")
        return message

    async def send(message):
        if message["type"] == "http.response.body":
            print(f"send() with the body {message['body']!r}")

    await app(dict(SCOPE), receive, send)


if __name__ == "__main__":
    asyncio.run(main())
