"""Chapter 5: a WSGI app inside ASGI, through asgiref's WsgiToAsgi and rootserve's WSGIMount.

Both adapters are ASGI apps that call a WSGI app. The script calls each one by hand, as
ch5_call_by_hand.py calls ch5_app, and the WSGI app says which thread it ran on.
"""

import asyncio
import threading

from asgiref.wsgi import WsgiToAsgi
from ch5_call_by_hand import converse, http_scope, inbox_of

from rootserve.wsgi.mount import WSGIMount


def wsgi_app(environ, start_response):
    """A tiny WSGI app: it reports the request body's size and the thread it runs on."""
    length = int(environ.get("CONTENT_LENGTH") or 0)  # PEP 3333: read no more than this
    size = len(environ["wsgi.input"].read(length))
    text = f"{environ['PATH_INFO']}: {size} bytes, on thread {threading.current_thread().name}\n"
    body = text.encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body]


async def main():
    print(f"The event loop runs on thread {threading.current_thread().name}.\n")
    parts = [
        {"type": "http.request", "body": b"ping, ", "more_body": True},
        {"type": "http.request", "body": b"pong", "more_body": False},
    ]
    for adapter in (WsgiToAsgi(wsgi_app), WSGIMount(wsgi_app, threads=1)):
        print(f"{type(adapter).__name__}(wsgi_app):")
        scope = http_scope("POST", "/report", {}, b"ping, pong")
        await converse(adapter, scope, inbox_of(*parts))
        print()


if __name__ == "__main__":
    asyncio.run(main())
