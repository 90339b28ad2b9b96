"""A Flask app, written as Flask's docs show, runs unchanged under rootserve.

The app (tests/apps/wsgi/flask_app.py) is served behind wsgiref's validator; `sized_reads`
sits between the validator and Flask, because Werkzeug reads `wsgi.input` with `read()` and
no size when the server sets `wsgi.input_terminated` (see tests/wsgi/support.py). The CLI
test serves the module's `app` as it is, found by `module:attr` and detected as WSGI.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.apps.wsgi import STATIC, flask_app
from tests.helpers import ROOT, start_cli
from tests.wsgi.support import (
    KIB,
    WAIT,
    Served,
    assert_validated,
    capture_errors,
    serve_wsgi,
    sized_reads,
    validated,
)

VALIDATED_FLASK = validated(sized_reads(flask_app.app))


@pytest.fixture(autouse=True)
def errors(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.LogCaptureFixture]:
    captured = capture_errors(caplog, monkeypatch)
    yield captured
    assert_validated(captured)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve_wsgi(VALIDATED_FLASK, threads=4) as served:
        yield served


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=WAIT) as client:
        yield client


def test_flask_routes_and_unicode_path(client: httpx.Client):
    index = client.get("/")
    assert (index.status_code, index.text) == (200, "hello from flask")
    answer = client.get("/users/café", params={"q": "a b"})
    assert answer.status_code == 200
    assert answer.json() == {"name": "café", "q": "a b", "url": "/users/caf%C3%A9"}


def test_flask_json_in_and_out(client: httpx.Client):
    created = client.post("/items", json={"name": "lamp", "watts": 40})
    assert created.status_code == 201
    assert created.json() == {"created": "lamp", "fields": ["name", "watts"]}
    refused = client.post("/items", json={"name": 3})
    assert refused.status_code == 422
    assert refused.json()["detail"] == "name must be a string"


def test_flask_multipart_file_upload(client: httpx.Client):
    data = os.urandom(300 * KIB)
    answer = client.post(
        "/upload",
        files={"file": ("notes.bin", data, "application/octet-stream")},
        data={"note": "bonjour"},
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "filename": "notes.bin",
        "content_type": "application/octet-stream",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": "bonjour",
    }


def test_flask_stream_with_context(client: httpx.Client):
    with client.stream("GET", "/stream", params={"n": 4}) as answer:
        assert answer.status_code == 200
        assert answer.headers["transfer-encoding"] == "chunked"
        body = b"".join(answer.iter_bytes())
    assert body.decode() == "".join(f"line {n} of /stream\n" for n in range(4))


def test_flask_send_file_conditional_and_head(client: httpx.Client):
    expected = (STATIC / "hello.txt").read_bytes()
    answer = client.get("/hello.txt")
    assert answer.status_code == 200
    assert answer.content == expected
    assert answer.headers["content-length"] == str(len(expected))
    etag = answer.headers["etag"]
    # The same file again, unchanged: 304 and no body.
    unchanged = client.get("/hello.txt", headers={"If-None-Match": etag})
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    head = client.head("/hello.txt")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(expected))


def test_flask_send_from_directory_large_file_and_range(
    client: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    data = os.urandom(2 * 1024 * KIB + 7)
    (tmp_path / "big.bin").write_bytes(data)
    monkeypatch.setitem(flask_app.app.config, "FILES_DIR", str(tmp_path))
    whole = client.get("/files/big.bin")
    assert whole.status_code == 200
    assert whole.content == data
    part = client.get("/files/big.bin", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.content == data[1000:2000]
    assert client.get("/files/missing.bin").status_code == 404


def test_flask_error_handlers(client: httpx.Client):
    teapot = client.get("/teapot")
    assert (teapot.status_code, teapot.json()) == (
        418,
        {"error": "teapot", "detail": "short and stout"},
    )
    forbidden = client.get("/forbidden")
    assert (forbidden.status_code, forbidden.json()) == (403, {"error": "Forbidden", "status": 403})
    missing = client.get("/no/such/route")
    assert (missing.status_code, missing.json()["status"]) == (404, 404)


def test_flask_url_for_under_a_root_path():
    with serve_wsgi(VALIDATED_FLASK, root_path="/mount") as served:
        answer = httpx.get(served.url + "/users/ann", timeout=WAIT)
    assert answer.json()["url"] == "/mount/users/ann"


def test_cli_serves_flask_detected_as_wsgi():
    with start_cli("tests.apps.wsgi.flask_app:app", "--port", "0", "--app-dir", str(ROOT)) as cli:
        with httpx.Client(base_url=cli.url, timeout=WAIT) as client:
            index = client.get("/")
            created = client.post("/items", json={"name": "cup"})
        assert cli.stop() == 0
    assert (index.status_code, index.text) == (200, "hello from flask")
    assert (created.status_code, created.json()["created"]) == (201, "cup")
    output = "\n".join(cli.lines)
    assert "Traceback" not in output
