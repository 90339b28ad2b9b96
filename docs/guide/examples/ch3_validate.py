"""Chapter 3: wsgiref.validate.validator is middleware that checks both sides of the contract."""

import io
import warnings
from wsgiref.validate import WSGIWarning, validator


def returns_a_str(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return "Hello"  # should be [b"Hello"]


def int_header(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", 5)])
    return [b"Hello"]


def no_content_type(environ, start_response):
    start_response("200 OK", [])
    return [b"Hello"]


def correct(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"Hello"]


def request():
    """A minimal but complete environ for GET /."""
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def start_response(status, headers, exc_info=None):
    return lambda data: None


def without_query_string():
    """The same request from a server that leaves QUERY_STRING out: a lesser fault."""
    environ = request()
    del environ["QUERY_STRING"]
    return environ


def check(name, app, environ):
    checked = validator(app)  # wrap it, exactly like any other middleware
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always", WSGIWarning)  # record warnings instead of printing
        try:
            body = checked(environ, start_response)
            try:
                received = b"".join(body)
            finally:
                body.close()
        except AssertionError as error:
            print(f"{name}: AssertionError: {error}")
            return
    print(f"{name}: passed, body {received!r}")
    for warning in warned:
        print(f"  but warned: {warning.category.__name__}: {warning.message}")


def main():
    for app in (returns_a_str, int_header, no_content_type, correct):
        check(app.__name__, app, request())
    check("correct, no QUERY_STRING", correct, without_query_string())


if __name__ == "__main__":
    main()
