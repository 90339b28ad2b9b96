"""Chapter 1: the smallest WSGI application.

Run it with `python ch1_smallest.py` and open http://127.0.0.1:8000/ in a browser.
"""

import sys
from wsgiref.simple_server import make_server


# --8<-- [start:app]
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"Hello, WSGI!\n"]
    # --8<-- [end:app]


def main(port=8000):
    with make_server("127.0.0.1", port, app) as server:
        print(f"Serving on http://127.0.0.1:{server.server_port}/ (Ctrl-C stops)")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
