"""Chapter 1, exercise 3: which header fields does a server add to the smallest app's answer?"""

import http.client
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server


def app(environ, start_response):  # the app of ch1_smallest.py
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"Hello, WSGI!\n"]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def main():
    with make_server("127.0.0.1", 0, app, handler_class=QuietHandler) as server:
        server.timeout = 10  # handle_request gives up after this many seconds without a request
        thread = threading.Thread(target=server.handle_request)  # exactly one request
        thread.start()
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        connection.close()
        thread.join()
    given = ["Content-Type"]
    for name, value in response.getheaders():
        source = "the app" if name in given else "the server"
        shown = value if name in ("Content-Type", "Content-Length") else "(varies)"
        print(f"{name + ':':<16}{shown:<28} added by {source}")


if __name__ == "__main__":
    main()
