"""Starlette and FastAPI apps, written as their docs show, run unchanged under rootserve."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from types import ModuleType

import httpx
import pytest
from tests.apps import fastapi_app, starlette_app
from tests.helpers import ROOT, Running, serve, start_cli

FRAMEWORKS = {"starlette": starlette_app, "fastapi": fastapi_app}


@pytest.fixture(params=sorted(FRAMEWORKS), scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[tuple[ModuleType, Running]]:
    module = FRAMEWORKS[request.param]
    with serve(module.app, lifespan="on") as running:
        yield module, running


@pytest.fixture
def client(served: tuple[ModuleType, Running]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[1].url, timeout=10) as client:
        yield client


def test_path_and_query_parameters(served: tuple[ModuleType, Running], client: httpx.Client):
    module, _ = served
    path = "/users/7" if module is starlette_app else "/items/7"
    answer = client.get(path, params={"q": "a b"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert list(answer.json().values()) == [7, "a b"]


def test_unknown_route_is_404(client: httpx.Client):
    assert client.get("/no/such/route").status_code == 404


def test_json_body(served: tuple[ModuleType, Running], client: httpx.Client):
    module, _ = served
    if module is starlette_app:
        answer = client.post("/items", json={"name": "lamp", "watts": 40})
        assert (answer.status_code, answer.json()) == (201, {"created": "lamp", "size": 2})
        refused = client.post("/items", json={"name": 3})
        # Starlette's own HTTPException handler answers in plain text.
        assert (refused.status_code, refused.text) == (422, "name must be a string")
    else:
        answer = client.post("/items", json={"name": "lamp", "price": 10, "tags": ["x"]})
        assert answer.status_code == 201
        assert answer.json() == {"name": "lamp", "price_with_tax": 12.0, "tags": ["x"]}
        refused = client.post("/items", json={"name": "lamp", "price": "not a number"})
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "price"]


def test_streaming_response_is_chunked(client: httpx.Client):
    with client.stream("GET", "/stream", params={"n": 4}) as answer:
        assert answer.headers["transfer-encoding"] == "chunked"
        body = b"".join(answer.iter_bytes())
    assert body == b"piece 0\npiece 1\npiece 2\npiece 3\n"


def test_background_task_runs_after_the_response(
    served: tuple[ModuleType, Running], client: httpx.Client
):
    module, _ = served
    token = uuid.uuid4().hex
    release, done = threading.Event(), threading.Event()
    module.BACKGROUND[token] = (release, done)
    try:
        # The task waits for `release`, which is set only once the response is here: had
        # the server held the response until the task ended, this would not return.
        answer = client.post(f"/background/{token}")
        assert answer.status_code == 202
        assert not done.is_set()
        release.set()
        assert done.wait(10), "the background task did not run"
    finally:
        release.set()
        del module.BACKGROUND[token]


def test_lifespan_state_reaches_the_request(
    served: tuple[ModuleType, Running], client: httpx.Client
):
    module, _ = served
    name = "starlette" if module is starlette_app else "fastapi"
    assert client.get("/state").json() == {"greeting": f"hello from {name} lifespan"}


def test_request_client_is_the_peer(served: tuple[ModuleType, Running]):
    _, running = served
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(b"GET /client HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
        own_port = sock.getsockname()[1]
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    body = answer.partition(b"\r\n\r\n")[2]
    assert json.loads(body) == {"host": "127.0.0.1", "port": own_port}


def test_http_exception_and_exception_handler(
    served: tuple[ModuleType, Running], client: httpx.Client
):
    module, _ = served
    teapot = client.get("/teapot")
    assert teapot.status_code == 418
    assert "short and stout" in teapot.text
    if module is fastapi_app:
        missing = client.get("/items/0")
        assert (missing.status_code, missing.json()) == (404, {"detail": "item 0 does not exist"})
    # A path parameter that does not convert is a 404 in Starlette, a 422 in FastAPI.
    bad = client.get("/users/abc" if module is starlette_app else "/items/abc")
    assert bad.status_code == (404 if module is starlette_app else 422)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_fastapi_app_through_the_cli_with_curl():
    with start_cli("tests.apps.fastapi_app:app", "--port", "0", "--app-dir", str(ROOT)) as cli:
        done = subprocess.run(
            [
                "curl", "--silent", "--show-error", "--max-time", "10",
                "--include", f"{cli.url}/items/5?q=curl",
                "--next", "--silent", "--show-error", "--max-time", "10",
                "--header", "content-type: application/json",
                "--data", '{"name": "cup", "price": 2.5}', f"{cli.url}/items",
            ],
            capture_output=True, timeout=30, check=True,
        )  # fmt: skip
        assert cli.stop() == 0
    head, _, rest = done.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nserver: rootserve\r\n" in head
    first, second = rest[: rest.index(b"}") + 1], rest[rest.index(b"}") + 1 :]
    assert json.loads(first) == {"item_id": 5, "q": "curl"}
    assert json.loads(second) == {"name": "cup", "price_with_tax": 3.0, "tags": []}
