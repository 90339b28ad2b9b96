"""Chapter 5, exercise 1: ASGI middleware that adds a header field to every HTTP response.

The middleware is an ASGI app that calls the app it wraps with its own send(); that send()
changes http.response.start messages on their way to the server's send(). Other scopes
(lifespan, websocket) pass through untouched. The script serves a small app wrapped in it
with rootserve's test client and prints the response's header fields (without Date).
"""

from rootserve.testing import Client


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return  # no lifespan, no WebSocket
    await receive()
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"Hello!\n"})


def add_header(app, name, value):
    """`app`, with the field `name: value` (both str) added to each HTTP response."""
    field = (name.lower().encode("latin-1"), value.encode("latin-1"))

    async def with_header(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                # A new message and a new list: the app may still hold its own.
                message = {**message, "headers": [*message.get("headers", []), field]}
            await send(message)

        return await app(scope, receive, send_with_header)

    return with_header


app = add_header(hello, "X-Served-By", "chapter-5")


def main():
    with Client(app) as client:
        response = client.get("/")
    print(response.status)
    for name, value in response.headers:
        if name != "date":
            print(f"{name}: {value}")
    print(response.text, end="")


if __name__ == "__main__":
    main()
