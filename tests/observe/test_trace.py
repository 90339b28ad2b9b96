"""--trace: what a block shows and when it is written, through rootserve.testing's Client
(the same runners, adapters and tracer as the server; `client.traces` gets the blocks)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.apps import broken_contract
from tests.observe.trace_support import trace_blocks
from tests.wsgi.support import serve_wsgi

from rootserve.config import Config
from rootserve.demo.app import app as demo_app
from rootserve.loading import dress_app
from rootserve.observe import trace
from rootserve.observe._trace_render import Bytes, snapshot
from rootserve.testing import Client
from rootserve.types import Receive, Scope, Send


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


async def echo_body(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": message["body"]})


async def fails(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise RuntimeError("boom")


def wsgi_writes(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    return [b"returned"]


def wsgi_fails_late(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [])

    def parts() -> Iterator[bytes]:
        yield b"first"
        raise ValueError("second part broke")

    return parts()


def test_off_the_app_is_served_as_it_is() -> None:
    """Tracing off costs nothing: there is no wrapper, so no code runs for it."""
    assert dress_app(hello, "asgi", Config()) is hello
    assert dress_app(wsgi_writes, "wsgi", Config()) is wsgi_writes
    assert dress_app(hello, "asgi", Config(trace=True)) is not hello


@pytest.mark.parametrize(
    ("settings", "on"),
    [
        ({}, False),
        ({"trace": True}, True),
        ({"trace_path": ["/api/*"]}, True),
        ({"trace_format": "json"}, True),
    ],
)
def test_what_turns_tracing_on(settings: dict[str, Any], on: bool) -> None:
    assert Config(**settings).tracing is on


def test_one_block_per_request_with_every_message() -> None:
    with Client(echo_body, trace=True, lifespan="off") as client:
        assert client.post("/echo?x=1", body=b"ping").body == b"ping"
    [block] = client.traces
    lines = block.splitlines()
    assert lines[0].startswith("── asgi http · POST /echo · id ")
    kinds = [line.split("ms  ", 1)[1].split("  ")[0] for line in lines if " ms  " in line]
    assert kinds == ["scope", "receive() ->", "send()", "send()", "app returned"]
    assert "body=b'ping' (4 bytes) more_body=False" in block
    assert "query_string=b'x=1'" in block


def test_the_request_id_is_the_clients_or_a_new_one() -> None:
    with Client(hello, trace=True, lifespan="off") as client:
        client.get("/", headers={"X-Request-ID": "given-7"})
        client.get("/")
        client.get("/")
    ids = [block.splitlines()[0].rsplit(" ", 1)[1] for block in client.traces]
    assert ids[0] == "given-7"
    assert len(set(ids)) == 3


def test_trace_path_picks_conversations() -> None:
    with Client(demo_app, trace_path=["/api/*"]) as client:
        client.get("/")
        client.get("/api/info")
        client.get("/stream")
    assert len(client.traces) == 1  # not the lifespan either: it has no path
    assert "GET /api/info" in client.traces[0]


def test_json_blocks_for_tools() -> None:
    with Client(echo_body, trace_format="json", lifespan="off") as client:
        client.post("/j", body=b"x" * 100, headers={"X-Request-ID": "json-1"})
    [line] = client.traces
    block = json.loads(line)
    assert {k: block[k] for k in ("contract", "type", "id", "method", "path", "part", "final")} == {
        "contract": "asgi",
        "type": "http",
        "id": "json-1",
        "method": "POST",
        "path": "/j",
        "part": 1,
        "final": True,
    }
    events = block["events"]
    assert [e["event"] for e in events] == ["scope", "receive", "send", "send", "returned"]
    assert ["host", "testserver"] in events[0]["value"]["headers"]
    assert events[1]["value"]["body"] == {"bytes": 100, "preview": "x" * 40}
    assert events[3]["value"]["body"]["bytes"] == 100
    assert all(isinstance(e["ms"], float) for e in events)
    assert events[-1]["note"] == "None"


def test_nothing_a_client_sends_reaches_the_terminal_raw() -> None:
    """A path or body with escape sequences and line breaks is written escaped: a request
    can neither colour the terminal nor forge a line of its own."""
    with Client(echo_body, trace=True, lifespan="off") as client:
        client.post("/%1b[31mred%0Afake", body=b"\x1b[2J\r\n-- forged block")
    [block] = client.traces
    assert "\x1b" not in block and "\r" not in block
    assert "-- forged block" not in block.split("\n", 1)[0]
    assert "/\\x1b[31mred\\nfake" in block.splitlines()[0]
    assert "body=b'\\x1b[2J\\r\\n-- forged block' (21 bytes)" in block


def test_colour_only_when_asked() -> None:
    written: list[str] = []
    tracer = trace.Tracer(colour=True, sink=written.append)
    app = tracer.wrap(hello, "asgi")
    with Client(app, strict=False, lifespan="off") as client:
        client.get("/")
    assert "\x1b[1m── asgi http" in written[0]
    assert "\x1b[36m" not in written[0]  # (no receive: hello never called it)
    assert "\x1b[32msend()\x1b[0m" in written[0]
    # A sink (a test, a tool) and NO_COLOR never get colour.
    assert not trace.Tracer.from_config(Config(trace=True), sink=written.append).colour


def test_an_exception_ends_the_block() -> None:
    with Client(fails, trace=True, lifespan="off", strict=False) as client:
        assert client.get("/").status == 500  # the head was held back with no body
    [block] = client.traces
    assert block.splitlines()[-1].endswith("raised  RuntimeError: boom")


def test_a_broken_contract_is_shown_before_the_rule() -> None:
    """Under --strict the trace is outermost: it shows the message that broke the rule."""
    with Client(broken_contract.body_first, trace=True, lifespan="off") as client:
        assert client.get("/").status == 500
    [block] = client.traces
    assert "send()  type='http.response.body'" in block
    assert "raised  ContractError: ASGI http: 'http.response.body' sent before" in block


def test_wsgi_write_and_exc_info() -> None:
    with Client(wsgi_writes, trace=True) as client:
        assert client.get("/").body == b"written returned"
    [block] = client.traces
    assert "write()  b'written ' (8 bytes)" in block
    assert "app returned  a list of 1" in block
    assert "body iterable gave  b'returned' (8 bytes)" in block
    assert block.splitlines()[-1].endswith("close()  (the iterable has none)")


def test_wsgi_failure_while_iterating() -> None:
    # The head went out with the first part: the connection is cut.
    client = Client(wsgi_fails_late, trace=True, strict=False)
    with client, pytest.raises(ConnectionError):
        client.get("/")
    [block] = client.traces
    assert "raised  ValueError: second part broke" in block
    assert block.splitlines()[-1].strip().endswith("close()")


def test_the_file_wrapper_is_left_to_the_server(tmp_path: Path) -> None:
    """A wsgi.file_wrapper body is passed on unwrapped, so the server still sends it
    from the kernel; the block says so and ends there."""
    path = tmp_path / "f.txt"
    path.write_bytes(b"file body\n")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start_response("200 OK", [("Content-Length", "10")])
        return environ["wsgi.file_wrapper"](path.open("rb"))

    with trace_blocks() as caught, serve_wsgi(app, trace=True) as server:
        import httpx

        assert httpx.get(server.url + "/").content == b"file body\n"
        blocks = caught.wait_for("wsgi.file_wrapper(")
    assert blocks[0].splitlines()[-1].endswith("app returned  wsgi.file_wrapper(BufferedReader)")


def test_a_mounted_wsgi_app_is_traced_inside_the_asgi_block() -> None:
    with Client(demo_app, trace=True) as client:
        assert (
            client.post("/wsgi/echo", body=b"a=1", headers={"Content-Type": "text/x"}).status == 200
        )
    [block] = [b for b in client.traces if "/wsgi/echo" in b.splitlines()[0]]
    assert block.startswith("── asgi http · POST /wsgi/echo")
    labels = [
        line.split("ms  ", 1)[1].split("  ")[0] for line in block.splitlines() if " ms  " in line
    ]
    assert labels[:3] == ["scope", "receive() ->", "wsgi environ"]
    assert "wsgi start_response()" in labels and "wsgi close()" in labels
    assert labels[-1] == "app returned"
    assert "SCRIPT_NAME='/wsgi' PATH_INFO='/echo'" in block


def test_lifespan_and_websocket_are_written_as_they_wait() -> None:
    with Client(demo_app, trace=True) as client:
        startup = list(client.traces)
        with client.websocket_connect("/chat/ws") as ws:
            assert "joined" in ws.receive_text()
            ws.send_text("hello")
            assert ws.receive_text().endswith(": hello")
    # Startup was written before any request: the app waits for shutdown in receive().
    assert len(startup) == 1 and "lifespan.startup.complete" in startup[0]
    websocket = [b for b in client.traces if "websocket" in b.splitlines()[0]]
    assert websocket[0].startswith("── asgi websocket · /chat/ws · id ")
    assert any("(continued)" in b.splitlines()[0] for b in websocket[1:])
    assert "text='hello' (5 chars)" in "".join(websocket)
    assert "lifespan.shutdown.complete" in client.traces[-1]


def test_a_long_conversation_is_written_in_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "_PART_SECONDS", 0.0)  # every step counts as a second late
    with Client(hello, trace=True, lifespan="off") as client:
        client.get("/")
    assert len(client.traces) >= 2
    assert "(continued)" in client.traces[1].splitlines()[0]
    assert "app returned" in client.traces[-1]


def test_snapshots_are_bounded_copies() -> None:
    message: dict[str, Any] = {"type": "http.response.body", "body": b"y" * 10_000}
    shown = snapshot(message)
    message["body"] = b"changed"
    assert shown["body"] == Bytes(10_000, b"y" * 40, True)
    assert (
        snapshot({"deep": {"er": {"still": {"more": 1}}}})["deep"]["er"]["still"].text
        == "{'more': 1}"
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now


def test_parts_follow_waits_and_steps_left_unwritten(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lifespan is written when it waits for shutdown; an hour later, its shutdown steps
    come in one part, not cut by the once-a-second rule. A request whose step has waited
    unwritten for over a second is written then."""
    clock = Clock()
    monkeypatch.setattr(trace, "time", clock)
    written: list[str] = []
    tracer = trace.Tracer(sink=written.append)
    lifespan = trace.Block(tracer, {"type": "lifespan"}, "asgi lifespan", "scope", {})
    lifespan.waiting()  # only the scope: nothing worth a part yet
    lifespan.add("receive", {"type": "lifespan.startup"})
    lifespan.add("send", {"type": "lifespan.startup.complete"})
    lifespan.waiting()
    assert len(written) == 1 and "startup.complete" in written[0]
    clock.now += 3600
    lifespan.waiting()  # nothing new: nothing written
    lifespan.add("receive", {"type": "lifespan.shutdown"})
    clock.now += 0.002
    lifespan.add("send", {"type": "lifespan.shutdown.complete"})
    lifespan.close("returned", "None")
    assert len(written) == 2
    assert "lifespan.shutdown'" in written[1] and "app returned" in written[1]

    request = trace.Block(tracer, {"type": "http"}, "asgi http · GET /", "scope", {})
    request.add("send", {"type": "http.response.start", "status": 200})
    clock.now += 1.5
    request.add("send", {"type": "http.response.body", "body": b"late", "more_body": True})
    assert len(written) == 3 and "b'late'" in written[2] and "status=200" in written[2]
    request.close("returned", "None")
    assert len(written) == 4 and "(continued)" in written[3]
