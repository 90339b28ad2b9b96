"""Chapter 2: a WSGI app in a dozen lines, no framework, served by the standard library.

Run it with `python ch2_hello.py` (or `python ch2_hello.py 8080` for another port).
"""

import sys
from wsgiref.simple_server import make_server


def app(environ, start_response):
    method = environ["REQUEST_METHOD"]
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    text = f"You sent {method} {path}"
    if query:
        text += f" with the query string {query!r}"
    body = (text + "\n").encode("utf-8")
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    start_response("200 OK", headers)
    return [body]


def main(port=8000):
    with make_server("127.0.0.1", port, app) as server:
        print(f"Serving on http://127.0.0.1:{server.server_port}/ (Ctrl-C stops)")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
