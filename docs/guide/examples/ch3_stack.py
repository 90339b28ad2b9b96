"""Chapter 3: stack middleware around apps and serve the result with the chapter-3 server."""

import socket
import threading

import ch2_app
from ch3_middleware import mount, timing, where
from ch3_server import serve_one
from tour import show

# The shop app lives under /shop, the "where" app under /where; timing wraps them all.
shop = mount(ch2_app.app, "/shop")
info = mount(where, "/where")


def site(environ, start_response):
    """Send /where... to `info` and everything else to `shop`."""
    if environ["PATH_INFO"].startswith("/where"):
        return info(environ, start_response)
    return shop(environ, start_response)


app = timing(site)

REQUESTS = [
    ("GET", "/shop/greet?name=Ada"),
    ("GET", "/where/some/page"),
    ("GET", "/greet?name=Ada"),
]


def main():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        port = listener.getsockname()[1]

        def serve():
            for _ in REQUESTS:
                serve_one(listener, app)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        for method, target in REQUESTS:
            show(port, method, target)
        server.join()


if __name__ == "__main__":
    main()
