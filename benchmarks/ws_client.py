"""WebSocket echo load: N connections, each sending a small text message and awaiting its echo.

    .venv/bin/python benchmarks/ws_client.py --port 8000 --connections 50 --duration 8

Each connection opens with a real RFC 6455 handshake (checked: 101 and the right
Sec-WebSocket-Accept; no extension offered, so no compression), then loops: send one masked
text frame of `--size` bytes, wait for the server's unmasked echo, check it byte for byte,
send the next. One message in flight per connection, as a chat or RPC client would.

The client is kept cheap so that it is not the bottleneck: the frame is masked once per
connection (a fixed key per connection, chosen at random: fine for measuring a server,
though RFC 6455 section 5.3 wants a fresh key per frame from a real client), echoes are
compared as bytes, and it runs on uvloop when available.

Output on stdout, one line each, flushed: `start` when the measured window opens (after
`--warmup` seconds of load), `end` when it closes (no new message is sent after it), then
one JSON object: messages, seconds, msg_per_sec, p50_ms, p99_ms, errors, connections.
The driver (run.py) reads the server's CPU time at `start` and `end`. Exit status 0, or 1
with the reason on stderr when connections could not be opened.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import sys
import time
from typing import Any

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HANDSHAKE_TIMEOUT = 10.0
DRAIN_TIMEOUT = 5.0


def masked_text_frame(payload: bytes, key: bytes) -> bytes:
    """One FIN text frame from a client (RFC 6455 section 5.2), payload under 126 bytes."""
    assert len(payload) < 126
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + key + masked


class Load:
    """What all connections share: whether to send, and the counts."""

    def __init__(self) -> None:
        self.sending = True
        self.measuring = False
        self.messages = 0
        self.errors = 0
        self.latencies: list[int] = []  # nanoseconds, measured window only
        self.in_flight = 0
        self.idle = asyncio.Event()


class EchoClient(asyncio.Protocol):
    def __init__(self, load: Load, host: str, port: int, path: str, payload: bytes) -> None:
        self.load = load
        key = base64.b64encode(os.urandom(16))
        self.accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        self.request = (
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            ).encode()
            + b"Sec-WebSocket-Key: "
            + key
            + b"\r\n\r\n"
        )
        self.frame = masked_text_frame(payload, os.urandom(4))
        self.echo = bytes([0x81, len(payload)]) + payload  # unmasked, from the server
        self.transport: Any = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.open = False
        self.sent_at = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.open:
            self._handshake(data)
            return
        buffer = self.buffer + data if self.buffer else data
        size = len(self.echo)
        load = self.load
        while len(buffer) >= size:
            if buffer[:size] != self.echo:
                load.errors += 1
                self.transport.close()
                return
            buffer = buffer[size:]
            load.in_flight -= 1
            if load.measuring:
                load.messages += 1
                load.latencies.append(time.perf_counter_ns() - self.sent_at)
            self.send()
        self.buffer = buffer

    def _handshake(self, data: bytes) -> None:
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        self.buffer = b""
        lines = head.split(b"\r\n")
        fields = {
            n.strip().lower(): v.strip() for n, _, v in (ln.partition(b":") for ln in lines[1:])
        }
        if (
            not lines[0].startswith(b"HTTP/1.1 101")
            or fields.get(b"sec-websocket-accept") != self.accept
        ):
            self.opened.set_exception(RuntimeError(f"handshake refused: {lines[0]!r}"))
            self.transport.close()
            return
        self.open = True
        self.opened.set_result(None)
        if rest:
            self.data_received(rest)

    def send(self) -> None:
        load = self.load
        if not load.sending:
            if load.in_flight == 0:
                load.idle.set()
            return
        load.in_flight += 1
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.frame)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or RuntimeError("connection closed during handshake"))
        elif self.load.sending:
            self.load.errors += 1


def percentile(sorted_ns: list[int], q: float) -> float | None:
    if not sorted_ns:
        return None
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6


async def run(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    load = Load()
    payload = b"x" * args.size
    clients: list[EchoClient] = []
    for _ in range(args.connections):
        _, client = await loop.create_connection(
            lambda: EchoClient(load, args.host, args.port, args.path, payload),
            args.host,
            args.port,
        )
        await asyncio.wait_for(client.opened, HANDSHAKE_TIMEOUT)
        clients.append(client)
    for client in clients:
        client.send()
    await asyncio.sleep(args.warmup)
    print("start", flush=True)
    load.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(args.duration)
    load.sending = False
    load.measuring = False
    elapsed = time.perf_counter() - started
    print("end", flush=True)
    if load.in_flight:
        try:
            await asyncio.wait_for(load.idle.wait(), DRAIN_TIMEOUT)
        except TimeoutError:
            load.errors += 1
    for client in clients:
        # A close frame with code 1000, masked with an all-zero key (RFC 6455 5.5.1).
        client.transport.write(b"\x88\x82\x00\x00\x00\x00\x03\xe8")
        client.transport.close()
    latencies = sorted(load.latencies)
    return {
        "messages": load.messages,
        "seconds": elapsed,
        "msg_per_sec": load.messages / elapsed,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "errors": load.errors,
        "connections": args.connections,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--size", type=int, default=16, help="message size in bytes (< 126)")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        result = runner(run(args))
    except (OSError, RuntimeError, TimeoutError) as exc:
        print(f"ws_client: {exc!r}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
