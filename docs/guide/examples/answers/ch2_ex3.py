"""Chapter 2, exercise 3: what a WSGI app sees for a path with non-ASCII characters."""

import http.client
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server


def app(environ, start_response):
    raw = environ["PATH_INFO"]  # a native string: the URL's bytes, decoded as Latin-1
    path = raw.encode("latin-1").decode("utf-8", "replace")  # back to bytes, then UTF-8
    text = f"PATH_INFO as the server gave it: {raw!r}\nPATH_INFO read as UTF-8:         {path!r}\n"
    body = text.encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def main():
    with make_server("127.0.0.1", 0, app, handler_class=QuietHandler) as server:
        server.timeout = 10  # handle_request gives up after this many seconds without a request
        thread = threading.Thread(target=server.handle_request)  # exactly one request
        thread.start()
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        connection.request("GET", "/caf%C3%A9")  # "café", percent-encoded UTF-8 (RFC 3986, 2.1)
        print(connection.getresponse().read().decode("utf-8"), end="")
        connection.close()
        thread.join()


if __name__ == "__main__":
    main()
