"""A FastAPI app and a Flask app, unchanged, over HTTP/2: the real command serving each
module's `app` (found by `module:attr`, its contract detected), httpx speaking HTTP/2 by
prior knowledge; JSON in and out, path and query parameters, a multipart upload, a
streamed response, the framework's own error answers, and many streams at once on one
connection."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest
from tests.helpers import ROOT, start_cli

pytestmark = pytest.mark.timeout(120)


def h2_client() -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=10)


def side_by_side(paths: list[str]) -> list[httpx.Response]:
    """GET each of `paths` at once, as streams of one HTTP/2 connection. An AsyncClient:
    httpx's sync client shared by threads can write a stream's HEADERS after a later
    stream's, which RFC 9113 section 5.1.1 makes a connection error (PROTOCOL_ERROR)."""

    async def get_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(http1=False, http2=True, limits=limits, timeout=20) as client:
            return list(await asyncio.gather(*(client.get(path) for path in paths)))

    return asyncio.run(get_all())


def test_fastapi_over_http2() -> None:
    with (
        start_cli("tests.apps.fastapi_app:app", "--port", "0", cwd=ROOT) as server,
        h2_client() as client,
    ):
        reply = client.get(server.url + "/items/5", params={"q": "x"})
        assert reply.http_version == "HTTP/2"
        assert reply.json() == {"item_id": 5, "q": "x"}
        reply = client.post(server.url + "/items", json={"name": "pen", "price": 10.0})
        assert reply.status_code == 201
        assert reply.json()["price_with_tax"] == 12.0
        assert client.get(server.url + "/items/0").status_code == 404
        assert client.get(server.url + "/teapot").status_code == 418
        assert client.get(server.url + "/stream", params={"n": 4}).text == "".join(
            f"piece {i}\n" for i in range(4)
        )
        # Streams side by side on one connection.
        replies = side_by_side([server.url + f"/items/{i}" for i in range(1, 41)])
        assert [r.json()["item_id"] for r in replies] == list(range(1, 41))
        assert {r.http_version for r in replies} == {"HTTP/2"}


def test_flask_over_http2() -> None:
    with (
        start_cli("tests.apps.wsgi.flask_app:app", "--port", "0", cwd=ROOT) as server,
        h2_client() as client,
    ):
        reply = client.get(server.url + "/users/ann", params={"q": "1"})
        assert reply.http_version == "HTTP/2"
        assert reply.json() == {"name": "ann", "q": "1", "url": "/users/ann"}
        reply = client.post(server.url + "/items", json={"name": "pen", "n": 1})
        assert (reply.status_code, reply.json()) == (
            201,
            {"created": "pen", "fields": ["n", "name"]},
        )
        assert client.post(server.url + "/items", json={"name": 3}).status_code == 422
        content = bytes(range(256)) * 4096  # 1 MiB: more than one flow-control window
        reply = client.post(
            server.url + "/upload",
            files={"file": ("data.bin", content, "application/octet-stream")},
            data={"note": "h2"},
        )
        assert reply.json()["sha256"] == hashlib.sha256(content).hexdigest()
        assert reply.json()["note"] == "h2"
        assert client.get(server.url + "/teapot").status_code == 418
        replies = side_by_side([server.url + f"/users/u{i}" for i in range(40)])
        assert [r.json()["name"] for r in replies] == [f"u{i}" for i in range(40)]
