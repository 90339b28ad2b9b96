"""Chapter 6, exercise 2: chapter 3's limit_body, as ASGI middleware around a FastAPI app."""

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from rootserve.testing import Client

api = FastAPI()


@api.post("/echo", response_class=PlainTextResponse)
async def echo(request: Request):
    data = await request.body()
    return f"You posted {len(data)} bytes\n"


def limit_body(app, max_bytes):
    """Answer 413 without calling `app` when the declared Content-Length is over max_bytes."""

    async def limited_app(scope, receive, send):
        if scope["type"] == "http":
            # Header names in an ASGI scope are lower-case bytes (ASGI HTTP spec).
            declared = dict(scope["headers"]).get(b"content-length", b"0")
            status = 400 if not declared.isdigit() else 413 if int(declared) > max_bytes else 0
            if status:
                text = b"Bad Content-Length\n" if status == 400 else b"Body too large\n"
                headers = [(b"content-type", b"text/plain; charset=utf-8")]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": text})
                return
        await app(scope, receive, send)

    return limited_app


def chunked(data):
    """`data` as one chunk and the last chunk (RFC 9112, section 7.1)."""
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


def main():
    small, large = b"ping", b"x" * 32
    by_length = {"body": large}
    by_chunks = {"headers": {"Transfer-Encoding": "chunked"}, "body": chunked(large)}
    cases = [
        ("limit_body", limit_body(api, 16), "4 bytes, length", {"body": small}),
        ("limit_body", limit_body(api, 16), "32 bytes, length", by_length),
        ("limit_body", limit_body(api, 16), "32 bytes, chunked", by_chunks),
        ("max_body_size", api, "32 bytes, length", by_length),
        ("max_body_size", api, "32 bytes, chunked", by_chunks),
    ]
    for who, app, label, request in cases:
        settings = {"max_body_size": 16} if who == "max_body_size" else {}
        with Client(app, **settings) as client:
            response = client.post("/echo", **request)
        print(f"{who:<13} {label:<17} -> {response.status} {response.text!r}")


if __name__ == "__main__":
    main()
