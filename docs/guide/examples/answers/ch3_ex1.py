"""Chapter 3, exercise 1: middleware that answers HEAD for any app that only knows GET."""

from wsgiref.util import setup_testing_defaults


def head_as_get(app):
    """Run HEAD requests as GET, keep the status and header fields, drop the body.

    RFC 9110, section 9.3.2: the answer to HEAD is the answer to GET without its content,
    and its header fields (Content-Length included) should be the ones GET would send.
    """

    def wrapped(environ, start_response):
        if environ["REQUEST_METHOD"] != "HEAD":
            return app(environ, start_response)
        return without_content(app({**environ, "REQUEST_METHOD": "GET"}, start_response))

    return wrapped


def without_content(body):
    """Yield b"" for each chunk of `body`, then close it.

    PEP 3333, "Middleware Handling of Block Boundaries": middleware yields at least one value
    (an empty one if need be) for each value the app yields, so the app still runs step by
    step, and may still call start_response late, as it would for GET.
    """
    try:
        for _ in body:
            yield b""
    finally:
        if hasattr(body, "close"):
            body.close()


def only_get(environ, start_response):
    if environ["REQUEST_METHOD"] != "GET":
        start_response("405 Method Not Allowed", [("Content-Type", "text/plain"), ("Allow", "GET")])
        return [b"GET only\n"]
    body = b"A page about WSGI.\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def call(app, method):
    environ = {"REQUEST_METHOD": method, "QUERY_STRING": ""}
    setup_testing_defaults(environ)
    sent = {}

    def start_response(status, headers, exc_info=None):
        sent.update(status=status, headers=headers)
        return lambda data: None

    body = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    return sent["status"], dict(sent["headers"]).get("Content-Length"), data


def main():
    for label, app in (("without", only_get), ("with", head_as_get(only_get))):
        for method in ("GET", "HEAD"):
            status, length, data = call(app, method)
            print(
                f"{label:>7} middleware, {method:<4} -> {status}, Content-Length {length}, {data!r}"
            )


if __name__ == "__main__":
    main()
