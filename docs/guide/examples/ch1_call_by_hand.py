"""Chapter 1: play the server's part by hand; no socket, no HTTP, just two function calls."""

import io
import sys

from ch1_smallest import app

environ = {
    # What the request was: CGI-style names (PEP 3333, "environ Variables").
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/",
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    # What the server offers: the wsgi.* keys every server must add.
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.input": io.BytesIO(b""),
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": False,
    "wsgi.multiprocess": False,
    "wsgi.run_once": True,
}


def start_response(status, headers, exc_info=None):
    # A real server stores these and sends them just before the first body bytes.
    print("start_response was called with:")
    print(f"  status:  {status!r}")
    print(f"  headers: {headers!r}")

    def write(data):  # the legacy write() callable; new apps never use it
        raise NotImplementedError

    return write


body = app(environ, start_response)
print("the app returned:", repr(body))
for chunk in body:
    print("  a chunk of the body:", repr(chunk))
if hasattr(body, "close"):  # the server must call close() if there is one
    body.close()
