"""Chapter 3: middleware that turns an exception into a 500 page, while the status can change.

The demo serves a report that fails before its first part, then one that fails after it, with
the chapter-3 server, and prints what the client got and the end of the server's log.
"""

import contextlib
import io
import re
import socket
import sys
import threading

from ch3_server import serve_one
from tour import show


def error_page(app):
    """Answer `500 Internal Server Error` when `app` raises, if the head is not sent yet."""

    def guarded(environ, start_response):
        try:
            body = app(environ, start_response)
        except Exception:
            return failure(start_response, sys.exc_info())
        return pass_on(body, start_response)

    return guarded


def pass_on(body, start_response):
    """Yield the app's parts as they come; on an exception, try to answer 500 instead."""
    try:
        yield from body
    except Exception:
        yield from failure(start_response, sys.exc_info())
    finally:
        if hasattr(body, "close"):
            body.close()


def failure(start_response, exc_info):
    # PEP 3333, "Error Handling": with exc_info, start_response replaces the answer if the
    # head has not been sent, and raises the error again if it has. Never catch that error.
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    start_response("500 Internal Server Error", headers, exc_info)
    return [b"Something went wrong on our side.\n"]


def report(environ, start_response):
    """A report sent in parts that fails: at once, or after its first part."""
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    if environ["PATH_INFO"] == "/fails-at-once":
        raise RuntimeError("no data for the report")
    yield b"Report, part 1 of 2\n"
    raise RuntimeError("the data went away half way")


app = error_page(report)


def main():
    log = io.StringIO()
    with socket.create_server(("127.0.0.1", 0)) as listener, contextlib.redirect_stderr(log):
        listener.settimeout(10)
        port = listener.getsockname()[1]
        for target in ("/fails-at-once", "/fails-half-way"):
            server = threading.Thread(target=serve_one, args=(listener, app))
            server.start()
            show(port, "GET", target)
            server.join()
    print("The traceback the server logged, one frame a line, the last call last:")
    frame = re.compile(r'File ".*?([^/\\]+)", line \d+, in (\w+)\n +(.+)')
    for file, function, source in frame.findall(log.getvalue()):
        print(f"  {file}, {function}: {source}")
    print(" ", log.getvalue().splitlines()[-1])


if __name__ == "__main__":
    main()
