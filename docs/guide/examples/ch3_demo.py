"""Chapter 3: the chapter-2 requests again, answered by the chapter-3 server."""

import socket
import threading

from ch2_app import app
from ch2_demo import REQUESTS
from ch3_server import serve_one
from tour import show


def serve_and_show(app, requests):
    """Answer each of `requests` with ch3_server.serve_one and print the exchange."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)  # a demo must not wait forever if a request goes wrong
        port = listener.getsockname()[1]

        def serve():
            for _ in requests:
                serve_one(listener, app)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        for method, target, body in requests:
            show(port, method, target, body)
        server.join()


def main():
    serve_and_show(app, REQUESTS)


if __name__ == "__main__":
    main()
