"""Chapter 1, exercise 1: an app that greets the name in the path, called by hand."""

from wsgiref.util import setup_testing_defaults


def app(environ, start_response):
    name = environ["PATH_INFO"].strip("/")
    if not name:
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Put a name in the path, like /Ada\n"]
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [f"Hello, {name}!\n".encode()]


def call(app, path):
    """Play the server: build an environ for GET `path`, call `app`, collect what it sends."""
    # setup_testing_defaults fills in most other keys a server provides, but not
    # QUERY_STRING, CONTENT_TYPE or CONTENT_LENGTH; a GET without a query has an empty one.
    environ = {"PATH_INFO": path, "QUERY_STRING": ""}
    setup_testing_defaults(environ)
    sent = {}

    def start_response(status, headers, exc_info=None):
        sent["status"] = status
        return lambda data: None

    body = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    return sent["status"], data


def main():
    for path in ("/Ada", "/"):
        status, data = call(app, path)
        print(f"GET {path} -> {status}: {data!r}")


if __name__ == "__main__":
    main()
