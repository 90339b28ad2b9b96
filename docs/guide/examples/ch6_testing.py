"""Chapter 6: one set of checks, run against the Flask app and the FastAPI app alike.

rootserve.testing.Client writes each request as HTTP/1.1 bytes into the server's own
connection code, so both apps are answered by the parser, adapters and contract validators
that serve a socket. Run it as a script, or call `check(app)` from pytest.
"""

from ch6_apps import fastapi_app, flask_app

from rootserve.testing import Client


def check(app):
    """The same assertions for any app with ch6_apps' routes, WSGI or ASGI."""
    with Client(app) as client:  # strict: the app runs inside its contract's validator
        response = client.get("/greet?name=Ada")
        assert response.status == 200
        assert response.text == "Hello, Ada!\n"
        assert response.header("content-type") == "text/plain; charset=utf-8"

        response = client.post("/echo", body=b"ping")
        assert response.status == 200
        assert response.text == "You posted 4 bytes: ping\n"

        assert client.get("/missing").status == 404
        assert client.errors == []  # nothing was logged at ERROR: no exception, no broken rule


def show_trace(app):
    """Print what --trace shows for one request: the contract, call by call."""
    with Client(app, trace=True) as client:
        client.post("/echo", body=b"ping")
    # Read once the block has ended: by then every call of the app has returned. An ASGI
    # app's first block is its lifespan startup, so the request's is found by its head.
    print(next(block for block in client.traces if "POST /echo" in block))


def main():
    for label, app in (("Flask", flask_app), ("FastAPI", fastapi_app)):
        check(app)
        print(f"{label}: every check passed")
    show_trace(flask_app)
    show_trace(fastapi_app)


if __name__ == "__main__":
    main()
