"""Helpers for the guide's demo scripts: run a server in a thread, print HTTP exchanges.

An exchange is printed the way `curl -v` marks its lines: `>` for what the client sent,
`<` for the status line and header fields that came back, then the body as text. The
`Date` and `Server` fields are left out because they change from run to run and from one
Python version to the next.
"""

import http.client
import threading
from contextlib import contextmanager
from wsgiref.simple_server import WSGIRequestHandler, make_server

HIDDEN_FIELDS = {"date", "server"}


class QuietHandler(WSGIRequestHandler):
    """The standard library's request handler without its one-line log per request."""

    def log_message(self, format, *args):
        pass


@contextmanager
def wsgiref_server(app):
    """Serve `app` with `wsgiref.simple_server` on a free port; yield the port."""
    server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    # The socket is listening once make_server returns, so requests can be sent at once;
    # the thread only decides when they are answered.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def fetch(port, method, target, body=None, content_type=None):
    """Send one request; return (version, status, reason, fields, body bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        fields = {"Content-Type": content_type} if content_type else {}
        connection.request(method, target, body=body, headers=fields)
        response = connection.getresponse()
        data = response.read()
        version = "HTTP/1.1" if response.version == 11 else "HTTP/1.0"
        return version, response.status, response.reason, response.getheaders(), data
    finally:
        connection.close()


def show(port, method, target, body=None, content_type=None):
    """Send one request and print the exchange."""
    version, status, reason, fields, data = fetch(port, method, target, body, content_type)
    print(f"> {method} {target}")
    if content_type:
        print(f"> Content-Type: {content_type}")
    if body is not None:
        print(f"> (body) {body.decode()}")
    print(f"< {version} {status} {reason}")
    for name, value in fields:
        if name.lower() not in HIDDEN_FIELDS:
            print(f"< {name}: {value}")
    text = data.decode("utf-8", "replace")
    print(text if text.endswith("\n") or not text else text + "\n", end="")
    print()
