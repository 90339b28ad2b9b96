"""The WebSocket libraries on their own: the sans-IO work of one echoed message.

    .venv/bin/python benchmarks/ws_sansio.py            # 16-byte text messages
    .venv/bin/python benchmarks/ws_sansio.py --size 1024

For each library: take one masked client text frame in, get the message event out, decode
it, and frame the same text back; no sockets, no event loop. This is the part of a server's
per-message cost that the choice of library decides (rootserve picked the `websockets`
library's `ServerProtocol` over `wsproto` on this and on the ws-echo scenario of run.py).
Prints microseconds of CPU per message, the best of `--rounds` rounds.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from websockets.frames import Frame
from websockets.protocol import State
from websockets.server import ServerProtocol
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage


def client_frame(payload: bytes) -> bytes:
    """One masked FIN text frame (RFC 6455 section 5.2), payload under 64 KiB."""
    key = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = bytes([0x81, 0x80 | size])
    else:
        head = bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def with_websockets(frame: bytes, count: int) -> float:
    proto = ServerProtocol(state=State.OPEN, max_size=2**20)
    start = time.process_time()
    for _ in range(count):
        proto.receive_data(frame)
        for event in proto.events_received():
            assert isinstance(event, Frame)
            text = str(event.data, "utf-8")
        proto.send_text(text.encode())
        b"".join(proto.data_to_send())
    return time.process_time() - start


def with_wsproto(frame: bytes, count: int) -> float:
    conn = Connection(ConnectionType.SERVER)
    start = time.process_time()
    for _ in range(count):
        conn.receive_data(frame)
        for event in conn.events():
            assert isinstance(event, TextMessage)
            text = event.data
        conn.send(TextMessage(data=text))
    return time.process_time() - start


LIBRARIES: dict[str, Callable[[bytes, int], float]] = {
    "websockets (ServerProtocol)": with_websockets,
    "wsproto (Connection)": with_wsproto,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=16, help="message size in bytes (16)")
    parser.add_argument("--count", type=int, default=50_000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    frame = client_frame(b"x" * args.size)
    results = {}
    for name, run in LIBRARIES.items():
        results[name] = min(run(frame, args.count) for _ in range(args.rounds)) / args.count * 1e6
    best = min(results.values())
    print(f"one echoed {args.size}-byte text message, CPU us (best of {args.rounds} rounds):")
    for name, us in results.items():
        print(f"  {name:28} {us:6.2f} us  ({us / best:.2f}x)")


if __name__ == "__main__":
    main()
