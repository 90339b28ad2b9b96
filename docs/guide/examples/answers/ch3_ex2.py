"""Chapter 3, exercise 2: middleware that refuses request bodies larger than a limit."""

import io
from wsgiref.util import setup_testing_defaults


def limit_body(app, max_bytes):
    """Answer 413 when the declared body is larger than `max_bytes`; never call `app` then."""

    def limited(environ, start_response):
        try:
            length = int(environ.get("CONTENT_LENGTH") or "0")
        except ValueError:
            length = -1
        if length < 0:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"Content-Length is not a number\n"]
        if length > max_bytes:
            # RFC 9110, section 15.5.14: 413 Content Too Large.
            start_response("413 Content Too Large", [("Content-Type", "text/plain")])
            return [f"At most {max_bytes} bytes, please\n".encode()]
        return app(environ, start_response)

    return limited


def count_bytes(environ, start_response):
    data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or "0"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"Read {len(data)} bytes\n".encode()]


def post(app, body):
    environ = {
        "REQUEST_METHOD": "POST",
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    setup_testing_defaults(environ)
    sent = {}

    def start_response(status, headers, exc_info=None):
        sent["status"] = status
        return lambda data: None

    result = app(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return sent["status"], data


def main():
    app = limit_body(count_bytes, max_bytes=1024)
    for size in (10, 1024, 1025):
        status, data = post(app, b"x" * size)
        print(f"POST with {size:>4} bytes -> {status}: {data.decode()}", end="")


if __name__ == "__main__":
    main()
