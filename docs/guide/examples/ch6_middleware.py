"""Chapter 6: one middleware in both contracts, each wrapped around a framework's app.

The WSGI version is chapter 3's `timing`, unchanged; the ASGI version does the same job by
wrapping `send` where the WSGI one wraps `start_response`.
"""

import time

from ch3_middleware import timing
from ch6_apps import fastapi_app, flask_app

from rootserve.testing import Client


def timing_asgi(app):
    """Add a Server-Timing field: how long `app` took to send the start of its response."""

    async def timed_app(scope, receive, send):
        if scope["type"] != "http":  # lifespan and websocket scopes pass through untouched
            await app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message):
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - started) * 1000
                field = (b"server-timing", f"app;dur={elapsed_ms:.2f}".encode())
                message = {**message, "headers": [*message["headers"], field]}
            await send(message)

        await app(scope, receive, timed_send)

    return timed_app


def main():
    for label, app in (("Flask", timing(flask_app)), ("FastAPI", timing_asgi(fastapi_app))):
        with Client(app) as client:
            response = client.get("/greet?name=Ada")
            print(f"{label + ':':<8} {response.status} {response.text!r}")
            print(f"         Server-Timing: {response.header('server-timing')}")


if __name__ == "__main__":
    main()
