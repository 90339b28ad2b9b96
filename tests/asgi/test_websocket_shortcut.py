"""The small-message shortcut past the library's frame parser (asgi/_websocket_protocol.py
`small_message`): taken only for a read that is exactly one small whole masked text or
binary frame while the library is idle between frames; every other read goes to the
library, and the messages the app receives are the same either way.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from tests.asgi.test_websocket_cycle import Peer, accepted, run_cycle
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.utils import apply_mask

from rootserve.asgi._websocket_protocol import WebSocketProtocol
from rootserve.asgi.websocket import WebSocketCycle, WSConfig


def frame(first: int, payload: bytes, *, masked: bool = True) -> bytes:
    """One frame with first byte `first` (FIN, RSV, opcode) and a 7-bit length."""
    if not masked:
        return bytes((first, len(payload))) + payload
    key = os.urandom(4)
    return bytes((first, 0x80 | len(payload))) + key + apply_mask(payload, key)


def protocol(max_size: int | None = 2**20) -> WebSocketProtocol:
    return WebSocketProtocol(state=OPEN, max_size=max_size)


@pytest.mark.parametrize("first", [0x81, 0x82])
@pytest.mark.parametrize("size", [0, 1, 125])
def test_one_small_whole_message_is_unmasked(first: int, size: int) -> None:
    payload = bytes(range(size))
    assert protocol().small_message(frame(first, payload)) == payload


@pytest.mark.parametrize(
    "data",
    [
        frame(0x81, b"x", masked=False),  # a client must mask (RFC 6455 section 5.1)
        frame(0xC1, b"x"),  # RSV1: a meaning only an extension gives
        frame(0x91, b"x"),  # RSV3
        frame(0x01, b"x"),  # the first fragment of a message
        frame(0x80, b"x"),  # a continuation
        frame(0x89, b"x"),  # a ping: the library answers it
        frame(0x88, b"\x03\xe8"),  # a close
        frame(0x83, b"x"),  # a reserved opcode
        frame(0x81, b"one") + frame(0x81, b"two"),  # two messages in one read
        frame(0x81, b"one")[:-1],  # a part of one
        b"\x81",  # a part of a header
    ],
    ids=[
        "unmasked",
        "rsv1",
        "rsv3",
        "fragment",
        "continuation",
        "ping",
        "close",
        "reserved-opcode",
        "two-frames",
        "part-of-a-frame",
        "part-of-a-header",
    ],
)
def test_any_other_read_goes_to_the_library(data: bytes) -> None:
    assert protocol().small_message(data) is None


def test_a_long_frame_goes_to_the_library() -> None:
    key = os.urandom(4)
    long = bytes((0x81, 0x80 | 126)) + (200).to_bytes(2, "big") + key + apply_mask(b"y" * 200, key)
    assert protocol().small_message(long) is None


def test_not_while_the_library_is_inside_a_frame() -> None:
    ws = protocol()
    whole = frame(0x81, b"hello")
    ws.receive_data(whole[:3])  # the library now waits for the rest of this frame
    nxt = frame(0x81, b"next")
    assert ws.small_message(nxt) is None
    ws.receive_data(whole[3:])
    assert [e.data for e in ws.events_received() if isinstance(e, Frame)] == [b"hello"]
    assert ws.small_message(nxt) == b"next"  # between frames again


def test_not_inside_a_fragmented_message() -> None:
    ws = protocol()
    ws.receive_data(frame(0x01, b"part"))  # text, FIN unset: a message under way
    ws.events_received()
    # A new message here is a protocol error the library must see (RFC 6455 section 5.4).
    assert ws.small_message(frame(0x81, b"x")) is None


def test_not_over_the_size_limit() -> None:
    assert protocol(max_size=4).small_message(frame(0x81, b"12345")) is None
    assert protocol(max_size=5).small_message(frame(0x81, b"12345")) == b"12345"


def test_not_once_the_library_is_closing() -> None:
    ws = protocol()
    ws.send_close(1000, "")
    assert ws.small_message(frame(0x81, b"x")) is None


def run_messages(reads: list[bytes], count: int, config: WSConfig | None = None) -> Any:
    """The messages the app receives for `reads` fed to an accepted session, and the wire."""

    async def steps(cycle: WebSocketCycle, conn: Any) -> list[Any]:
        await accepted(cycle)
        for data in reads:
            conn.received(data)
        return [await cycle.receive() for _ in range(count)]

    results: list[Any] = []

    async def check(cycle: WebSocketCycle, conn: Any) -> None:
        results.append(await steps(cycle, conn))
        results.append(Peer(conn).frames())

    run_cycle(check, config=config)
    return results


def test_messages_are_the_same_by_either_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Through the shortcut, past the library, and through the library, in one session: a
    # small message, a part of one, its rest with a message after it, then a small one.
    fed: list[bytes] = []
    original = WebSocketProtocol.receive_data
    monkeypatch.setattr(
        WebSocketProtocol,
        "receive_data",
        lambda self, data: (fed.append(data), original(self, data))[1],
    )
    split = frame(0x82, b"split")
    reads = [
        frame(0x81, b"caf\xc3\xa9"),
        split[:4],
        split[4:] + frame(0x81, b"after"),
        frame(0x82, b"\x00\xff"),
    ]
    messages, _ = run_messages(reads, 4)
    assert messages == [
        {"type": "websocket.receive", "text": "café"},
        {"type": "websocket.receive", "bytes": b"split"},
        {"type": "websocket.receive", "text": "after"},
        {"type": "websocket.receive", "bytes": b"\x00\xff"},
    ]
    # Only the reads that were not one small whole message went through the library.
    assert fed == [reads[1], reads[2]]


def test_invalid_utf8_by_the_shortcut_fails_with_1007() -> None:
    messages, frames = run_messages([frame(0x81, b"\xff\xfe")], 1)
    assert messages == [
        {"type": "websocket.disconnect", "code": 1007, "reason": "invalid UTF-8 in a text message"}
    ]
    assert [(f.opcode, f.data[:2]) for f in frames] == [(Opcode.CLOSE, b"\x03\xef")]  # 1007
