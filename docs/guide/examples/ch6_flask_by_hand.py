"""Chapter 6: call a Flask app the way a WSGI server does; no socket, no HTTP, no server."""

import io
import sys

from ch6_apps import flask_app


def make_environ(method, path, query="", body=b""):
    """What a server would build from the request's bytes (PEP 3333, "environ Variables")."""
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def call(method, path, query="", body=b""):
    print(f"-- {method} {path}" + (f"?{query}" if query else ""))

    def start_response(status, headers, exc_info=None):
        # A server would keep these and send them just before the first body bytes.
        print(f"start_response({status!r}, {headers!r})")
        return lambda data: None  # write(), for old apps; Flask never calls it

    result = flask_app(make_environ(method, path, query, body), start_response)
    print(f"Flask returned a {type(result).__name__}")
    try:
        for chunk in result:
            print(f"  which gave {chunk[:40]!r}")
    finally:
        result.close()  # PEP 3333: the server calls close() whatever happens


call("GET", "/greet", "name=Ada")
call("POST", "/echo", body=b"ping")
call("GET", "/missing")
