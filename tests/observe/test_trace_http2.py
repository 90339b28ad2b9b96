"""--trace of HTTP/2 requests: the block of each names its stream (golden file, times and
ports masked), and a JSON block carries it as `stream`; a raw h2 client sends fixed headers
so that every line is the same on each run (tests/server/h2_server_support.py)."""

from __future__ import annotations

import json

import h2.events
from tests.helpers import raw_request, serve
from tests.observe.test_trace_golden import hello
from tests.observe.trace_support import check_golden, masked, trace_blocks
from tests.server.h2_server_support import h2_server, raw_client, read_until, request_headers

from rootserve.observe.trace import Tracer


def get_on_streams(port: int, path: str, stream_ids: tuple[int, ...]) -> int:
    """GET `path` on each of `stream_ids` of one connection; the client's port."""
    sock, conn = raw_client(port)
    with sock:
        for stream_id in stream_ids:
            headers = [*request_headers(port, path), ("x-request-id", f"golden-h2-{stream_id}")]
            conn.send_headers(stream_id, headers, end_stream=True)
        sock.sendall(conn.data_to_send())
        ended: set[int] = set()
        while ended != set(stream_ids):
            events = read_until(sock, conn, h2.events.StreamEnded)
            ended |= {e.stream_id for e in events if isinstance(e, h2.events.StreamEnded)}
        return int(sock.getsockname()[1])


def test_an_http2_block_names_its_stream() -> None:
    with trace_blocks() as caught, h2_server(Tracer().wrap(hello, "asgi")) as server:
        client = get_on_streams(server.port, "/hello?name=ann", (1,))
        blocks = caught.wait_for("app returned")
    assert len(blocks) == 1
    check_golden("http2.txt", masked(blocks[0], port=server.port, client=client))


def test_json_blocks_of_streams_side_by_side_carry_their_stream() -> None:
    blocks: list[str] = []
    with h2_server(Tracer(fmt="json", sink=blocks.append).wrap(hello, "asgi")) as server:
        get_on_streams(server.port, "/hello", (1, 3, 5))
    by_id = {block["id"]: block for block in map(json.loads, blocks)}
    assert {name: block["stream"] for name, block in by_id.items()} == {
        "golden-h2-1": 1, "golden-h2-3": 3, "golden-h2-5": 5,
    }  # fmt: skip


def test_an_http11_block_has_no_stream() -> None:
    blocks: list[str] = []
    tracer = Tracer(fmt="json", sink=blocks.append)
    with serve(tracer.wrap(hello, "asgi"), lifespan="off") as server:
        raw_request(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    [block] = map(json.loads, blocks)
    assert "stream" not in block and block["type"] == "http"


def wsgi_hello(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
    stream = environ.get("rootserve.http2")
    return [f"stream {stream['stream_id'] if isinstance(stream, dict) else '-'}".encode()]


def test_a_wsgi_block_names_its_stream_too() -> None:
    blocks: list[str] = []
    tracer = Tracer(sink=blocks.append)
    with h2_server(tracer.wrap(wsgi_hello, "wsgi"), "wsgi") as server:
        get_on_streams(server.port, "/w", (3,))
    [block] = blocks
    head = block.splitlines()[0]
    assert head.startswith("── wsgi · GET /w · id golden-h2-3") and head.endswith(" · h2 stream 3")


def test_the_wsgi_environ_has_the_stream_over_http2_only() -> None:
    with h2_server(wsgi_hello, "wsgi", detect=True) as server:  # HTTP/1.1 and HTTP/2
        sock, conn = raw_client(server.port)
        with sock:
            conn.send_headers(5, request_headers(server.port, "/s"), end_stream=True)
            sock.sendall(conn.data_to_send())
            events = read_until(sock, conn, h2.events.StreamEnded)
        body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
        assert body == b"stream 5"
        http11 = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        assert raw_request(server.port, http11).endswith(b"stream -")
