"""Chapter 2: the ch2_app routes again, written with Flask.

Run it with `python ch2_flask.py`; `app` is a WSGI application like the hand-written one.
"""

import sys
from wsgiref.simple_server import make_server

from flask import Flask, request

app = Flask(__name__)


@app.get("/")
def index():
    return "Hello from a bare WSGI app.\n"


@app.get("/greet")
def greet():
    name = request.args.get("name", "stranger")
    return f"Hello, {name}!\n"


@app.post("/echo")
def echo():
    data = request.get_data()
    return f"You posted {len(data)} bytes: {data.decode('utf-8', 'replace')}\n"


def main(port=8000):
    with make_server("127.0.0.1", port, app) as server:
        print(f"Serving on http://127.0.0.1:{server.server_port}/ (Ctrl-C stops)")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
