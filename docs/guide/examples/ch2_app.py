"""Chapter 2: routing, a query string, a POST body and statuses other than 200, by hand.

Run it with `python ch2_app.py` (or `python ch2_app.py 8080` for another port).
"""

import sys
from urllib.parse import parse_qs
from wsgiref.simple_server import make_server


def respond(start_response, status, text, extra_headers=()):
    """Send `text` as a UTF-8 plain-text body with the given status."""
    body = text.encode("utf-8")
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        *extra_headers,
    ]
    start_response(status, headers)
    return [body]


def index(environ, start_response):
    return respond(start_response, "200 OK", "Hello from a bare WSGI app.\n")


def greet(environ, start_response):
    # QUERY_STRING arrives still percent-encoded; parse_qs decodes it.
    query = parse_qs(environ.get("QUERY_STRING", ""))
    name = query.get("name", ["stranger"])[0]
    return respond(start_response, "200 OK", f"Hello, {name}!\n")


def echo(environ, start_response):
    # CONTENT_LENGTH may be missing or empty when there is no body (PEP 3333, "environ
    # Variables"), and the app should read no more than it says ("Input and Error Streams").
    try:
        length = int(environ.get("CONTENT_LENGTH") or "0")
    except ValueError:
        return respond(start_response, "400 Bad Request", "Content-Length is not a number.\n")
    data = environ["wsgi.input"].read(length)
    text = data.decode("utf-8", "replace")
    return respond(start_response, "200 OK", f"You posted {length} bytes: {text}\n")


# Which function answers which path, and for which methods.
ROUTES = {
    "/": {"GET": index},
    "/greet": {"GET": greet},
    "/echo": {"POST": echo},
}


def app(environ, start_response):
    methods = ROUTES.get(environ["PATH_INFO"])
    if methods is None:
        return respond(start_response, "404 Not Found", "Nothing here.\n")
    handler = methods.get(environ["REQUEST_METHOD"])
    if handler is None:
        # RFC 9110, section 15.5.6: a 405 response must list the allowed methods in Allow.
        allow = ", ".join(methods)
        text = f"{environ['REQUEST_METHOD']} is not allowed here.\n"
        return respond(start_response, "405 Method Not Allowed", text, [("Allow", allow)])
    return handler(environ, start_response)


def main(port=8000):
    with make_server("127.0.0.1", port, app) as server:
        print(f"Serving on http://127.0.0.1:{server.server_port}/ (Ctrl-C stops)")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
