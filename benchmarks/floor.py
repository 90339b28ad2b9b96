"""The floor: the least an HTTP/1.1 server in Python on uvloop can do per request.

A uvloop protocol feeds each connection's bytes to an httptools parser; when a message is
complete it writes one canned answer (200, `Content-Length`, `Hello, world!`), keeps the
connection open, and nothing else: no scope or environ, no app, no task, no header checks,
no timeouts. It is not a server anyone should run; it is the cost of the sockets, the loop
and the parser alone, so the driver can print every server's CPU per request as a multiple
of this one (benchmarks/run.py runs it as the server `floor` in the hello scenarios).

    python benchmarks/floor.py --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

import httptools
import uvloop

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, world!"


class Floor(asyncio.Protocol):
    """One connection: parse, and answer each complete request with ANSWER."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass, but has its methods.
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:  # httptools callback
        if self.transport is not None:
            self.transport.write(ANSWER)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
    server = await loop.create_server(Floor, host, port, backlog=2048)
    async with server:
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
