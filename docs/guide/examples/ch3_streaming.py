"""Chapter 3: a body sent in parts; each part leaves the server as soon as it is yielded.

The app pauses between parts. The client reads the raw bytes as they come and prints each
part with the time it arrived, counted from the arrival of the head.
"""

import socket
import threading
import time

from ch3_server import serve_one

PAUSE = 0.2  # seconds between two parts


def countdown(environ, start_response):
    """Yield the body in four parts, with a pause before each of the last three."""
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    for number in (3, 2, 1):
        yield f"{number}...\n".encode()
        time.sleep(PAUSE)  # stands for work: a query, a computation, waiting for news
    yield b"liftoff\n"


def arrivals(port):
    """Send GET /; yield (seconds since the head arrived, bytes) for each read of the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:
            received += client.recv(65536)
        started = time.perf_counter()
        head, _, body = received.partition(b"\r\n\r\n")
        yield 0.0, head.split(b"\r\n")[0]  # the status line
        if body:  # the first part came in the same read as the head
            yield 0.0, body
        while data := client.recv(65536):  # b"" when the server closes the connection
            yield time.perf_counter() - started, data


def main():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        server = threading.Thread(target=serve_one, args=(listener, countdown))
        server.start()
        status_line, *parts = arrivals(listener.getsockname()[1])
        server.join()
    print(f"head: {status_line[1].decode()}")
    for seconds, data in parts:
        print(f"after {seconds:.2f} s: {data!r}")


if __name__ == "__main__":
    main()
