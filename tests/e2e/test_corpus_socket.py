"""Every invalid corpus case over a real socket: rootserve answers with the case's status,
closes the connection, and never calls the app for the refused request.

The same files drive `tests/protocol/test_corpus.py` in memory; here each case's bytes go to
a server on 127.0.0.1 (port 0; `serve` waits for the server's readiness event). A case with
its own `limits` gets a server started with those limits as settings. Good requests that
precede the bad one in a pipeline are answered first, in order, by the app.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import pytest
from tests.helpers import Running, serve

CORPUS = Path(__file__).resolve().parents[1] / "protocol" / "corpus" / "invalid"
# Limits field (rootserve.protocol.rules.Limits) -> server setting (rootserve.config.Config).
SETTING_FOR_LIMIT = {
    "max_request_line_bytes": "max_request_line",
    "max_header_bytes": "max_header_size",
    "max_header_count": "max_header_count",
    "max_body_bytes": "max_body_size",
}
# Known bug: a BadRequest that follows good pipelined requests is never answered. The good
# response goes out with "connection: close" (HTTP11Connection.send_response drops keep-alive
# once the receive side has failed) and Connection.response_complete then closes without
# answering the BadRequest queued in its pipeline. RFC 9112 section 3.2 says a request
# without a valid Host MUST get a 400; section 9.6 forbids sending it after a "close".
READ_TIMEOUT = 5.0  # seconds; a case that gets no answer in this time fails
XFAIL_READ_TIMEOUT = 3.0  # known bugs may leave the connection hanging


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    limits: tuple[tuple[str, int], ...]
    good_paths: tuple[str, ...]  # paths of the requests answered before the bad one
    good_lengths: tuple[int, ...]  # and the lengths of their bodies
    partial_path: str | None  # the bad request's path when its head reached the app
    status: int
    known_bug: str | None  # the corpus xfail reason, when it applies to a whole feed


def load_cases() -> list[Case]:
    cases = []
    for path in sorted(CORPUS.glob("*.json")):
        data = json.loads(path.read_text(encoding="ascii"))
        xfail = data.get("xfail")
        known_bug = None
        if xfail is not None and "whole" in xfail.get("feeds", ["whole"]):
            known_bug = xfail["reason"]
        partial = data.get("partial")
        cases.append(
            Case(
                name=path.stem,
                raw=data["raw"].encode("latin-1"),
                limits=tuple(sorted(data.get("limits", {}).items())),
                good_paths=tuple(r["path"] for r in data["requests"]),
                good_lengths=tuple(len(r["body"]) for r in data["requests"]),
                partial_path=partial["path"] if partial else None,
                status=data["status"],
                known_bug=known_bug,
            )
        )
    return cases


CASES = load_cases()


@dataclass
class CountingApp:
    """An ASGI app that answers `PATH:BODY-LENGTH` after reading the whole body, and counts
    its calls per (client port, path): each test has a connection of its own. A test takes
    its port's counts away (`take_calls_from`): the kernel may give a later test's connection
    the same ephemeral port, and it must not see the earlier test's calls."""

    calls: Counter[tuple[int, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http", scope["type"]
        with self.lock:
            self.calls[(scope["client"][1], scope["path"])] += 1
        length = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the body broke a rule: the server answers, not the app
            assert message["type"] == "http.request", message
            length += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = f"{scope['path']}:{length}".encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"content-length", b"%d" % len(body)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def take_calls_from(self, port: int) -> Counter[str]:
        with self.lock:
            mine = [(p, path) for p, path in self.calls if p == port]
            return Counter({path: self.calls.pop((p, path)) for p, path in mine})


Servers = Callable[[tuple[tuple[str, int], ...]], tuple[Running, CountingApp]]


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    """One server per set of limits, started when a case first needs it."""
    started: dict[tuple[tuple[str, int], ...], tuple[Running, CountingApp]] = {}
    with ExitStack() as stack:

        def get(limits: tuple[tuple[str, int], ...]) -> tuple[Running, CountingApp]:
            if limits not in started:
                app = CountingApp()
                settings = {SETTING_FOR_LIMIT[name]: value for name, value in limits}
                running = stack.enter_context(
                    # The corpus is HTTP/1.1's: with HTTP/2 on (--http auto, the default) a
                    # connection that begins with the preface is HTTP/2 (test_http2_cli.py).
                    serve(app, lifespan="off", timeout_header=2.0, http="h1", **settings)
                )
                started[limits] = (running, app)
            return started[limits]

        yield get


@dataclass
class Responses:
    """Responses read back from a byte stream by llhttp's response parser."""

    parser: Any = None
    begun: int = 0
    done: list[tuple[int, dict[bytes, bytes], bytes]] = field(default_factory=list)
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    _body: bytes = b""

    def on_message_begin(self) -> None:
        self.begun += 1
        self._headers, self._body = {}, b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append((self.parser.get_status_code(), self._headers, self._body))


def read_responses(raw: bytes) -> Responses:
    responses = Responses()
    responses.parser = httptools.HttpResponseParser(responses)
    responses.parser.feed_data(raw)
    return responses


def exchange(port: int, raw: bytes, timeout: float) -> tuple[int, bytes]:
    """Send `raw`, read until the server closes; (our port, everything received)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        local_port = sock.getsockname()[1]
        sock.sendall(raw)
        received = []
        while chunk := sock.recv(65536):  # b"" once the server closed: the loop ends
            received.append(chunk)
        return local_port, b"".join(received)


def settle(port: int, app: CountingApp) -> None:
    """Wait until the app's task for a refused request, if the server made one, has counted
    its call. The server may answer 400 and close before that task's first step runs, and
    the kernel may give the next test's connection the same client port, which would then
    count it. The server's loop runs ready tasks in order, so once a request sent after it
    is answered, that task has run (or was cancelled before it could)."""
    local_port, received = exchange(
        port, b"GET /settle HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", READ_TIMEOUT
    )
    assert received.startswith(b"HTTP/1.1 200 "), received
    app.take_calls_from(local_port)


def _params() -> list[Any]:
    params = []
    for case in CASES:
        marks = []
        if case.known_bug is not None:
            marks.append(pytest.mark.xfail(strict=True, reason=case.known_bug))
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


def test_every_invalid_case_is_here() -> None:
    assert len(CASES) >= 80


@pytest.mark.parametrize("case", _params())
def test_invalid_case_over_a_socket(servers: Servers, case: Case) -> None:
    running, app = servers(case.limits)
    timeout = READ_TIMEOUT if case.known_bug is None else XFAIL_READ_TIMEOUT
    port, received = exchange(running.port, case.raw, timeout)
    settle(running.port, app)
    # Taken before any assertion: a case that fails (a known bug's xfail) must not leave
    # its calls for a later connection on the same port.
    calls = app.take_calls_from(port)

    responses = read_responses(received)
    assert responses.begun == len(responses.done), f"a response was cut short: {received!r}"
    *answered, (status, headers, body) = responses.done
    # The good requests first, in order, answered by the app.
    assert [(s, b) for s, _, b in answered] == [
        (200, f"{p}:{n}".encode()) for p, n in zip(case.good_paths, case.good_lengths, strict=True)
    ]
    # Then the refusal, which closes the connection (`exchange` read until EOF).
    assert status == case.status, body
    assert headers.get(b"connection") == b"close"
    # The app saw the good requests only; a bad body may have reached it after its head,
    # but then it was told of the disconnect and never answered.
    expected = Counter(case.good_paths)
    extra = calls - expected
    assert calls - extra == expected
    assert extra == Counter() or (
        case.partial_path is not None and extra == Counter({case.partial_path: 1})
    ), calls
