"""An in-process test client for ASGI and WSGI apps that runs the server's own code.

How this works. A `Client` wraps the app as the server does (`strict=True`: in its
contract's validator), builds the server's runners (`build_runners`) and `ServerState`, and
keeps an event loop of its own, run in the calling thread. Each request opens a server
`Connection` on a `MemoryTransport` (rootserve/_testing_wire.py), writes the request's raw
HTTP/1.1 bytes into `data_received`, and runs the loop until the bytes the connection wrote
parse as a whole response and the app's call is over (so work an app does after its last
body message, such as Starlette's background tasks, is done too). The HTTP/1.1 protocol,
the exchange, the ASGI or WSGI adapter and the validator are the very ones that serve a
socket; only the socket is missing.

    with Client(app) as client:          # ASGI lifespan startup here, shutdown at the end
        response = client.get("/")
        assert response.status == 200

`client.errors` holds the lines logged at ERROR by the `rootserve.error` logger during the
last request: under strict, a broken contract is a 500 whose body names the rule, and its
line is there too. With the setting `trace=True`, `client.traces` gets each --trace block.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import urlsplit

from rootserve._testing_wire import MemoryTransport, Response, ResponseReader
from rootserve._testing_ws import WebSocketClosed, WebSocketRejected, WebSocketSession
from rootserve.asgi.lifespan import Lifespan, LifespanFailed, NullLifespan
from rootserve.config import Config
from rootserve.loading import detect_interface, dress_app
from rootserve.server.assembly import build_runners
from rootserve.server.connection import Connection
from rootserve.server.state import Runner, ServerState

__all__ = [
    "Client",
    "Response",
    "StreamingResponse",
    "WebSocketClosed",
    "WebSocketRejected",
    "WebSocketSession",
    "client_fixture",
]

TIMEOUT: Final = 30.0  # seconds an app gets to answer before the request fails

_error_log = logging.getLogger("rootserve.error")


class StreamingResponse:
    """A response whose body is read as it arrives: `iter_bytes()` runs the client's loop
    until the app sends more, and yields each piece."""

    def __init__(self, status: int, headers: list[tuple[str, str]], pull: _Pull) -> None:
        self.status = status
        self.headers = headers
        self._pull = pull

    def header(self, name: str) -> str | None:
        return Response(self.status, self.headers, b"").header(name)

    def iter_bytes(self) -> Iterator[bytes]:
        while True:
            piece = self._pull.next_piece()
            if piece is None:
                return
            yield piece

    def read(self) -> bytes:
        return b"".join(self.iter_bytes())


class _Capture(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line = f"{line}: {type(exc).__name__}: {exc}"
        self.lines.append(line)


class Client:
    """Sends requests to `app` through rootserve's server code, in this thread.

    `settings` are rootserve `Config` fields (`max_body_size=...`, `root_path=...`).
    Use it in a `with` block to run ASGI lifespan startup and shutdown; without one, call
    `close()` at the end (a WSGI app's threads stop there)."""

    def __init__(
        self,
        app: Any,
        *,
        strict: bool = True,
        interface: str = "auto",
        lifespan: str = "auto",
        base_url: str = "http://testserver",
        **settings: Any,
    ) -> None:
        settings.setdefault("access_log", False)
        self.config = Config(strict=strict, interface=interface, lifespan=lifespan, **settings)
        self.interface = detect_interface(app) if interface == "auto" else interface
        self.traces: list[str] = []  # --trace blocks (settings `trace=True`), as written
        self.app = dress_app(app, self.interface, self.config, self.traces.append)
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"base_url {base_url!r} must be http://host[:port]")
        self.host = url.netloc
        self.address = (url.hostname, url.port or 80)
        self.errors: list[str] = []
        self.loop = asyncio.new_event_loop()
        self._lifespan: Lifespan | NullLifespan = NullLifespan()
        self._waiter: asyncio.Future[None] | None = None
        self._runner, self._state = self._assemble(None)

    def _assemble(self, lifespan_state: dict[str, Any] | None) -> tuple[Runner, ServerState]:
        runner, websocket = build_runners(
            self.config, self.app, self.interface, lifespan_state, self.loop, multiprocess=False
        )
        state = ServerState.from_config(
            self.config, runner=runner, websocket=websocket, loop=self.loop
        )
        return runner, state

    def _new_connection(self) -> Connection:
        """A connection as the server makes one (its settings read from the state)."""
        return Connection(self._state)

    # -- lifetime ---------------------------------------------------------------------

    def __enter__(self) -> Client:
        if self.config.lifespan != "off" and self.interface == "asgi":
            lifespan = Lifespan(self.app, required=self.config.lifespan == "on")
            try:
                self._run(lifespan.startup())
            except LifespanFailed:
                self.close()
                raise
            self._lifespan = lifespan
            # The runners are made again so that request scopes carry the startup's state.
            self._runner, self._state = self._assemble(lifespan.state)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Run lifespan shutdown (after a `with` enter) and stop the app's threads."""
        if self.loop.is_closed():
            return
        try:
            self._run(self._runner.aclose())
            self._run(self._lifespan.shutdown())
        finally:
            self.loop.close()

    # -- requests ---------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: list[tuple[str, str]] | dict[str, str] | None = None,
        body: bytes = b"",
        json: Any = None,
    ) -> Response:
        """Send one request on a new connection and return the whole response."""
        with self.stream(method, path, headers=headers, body=body, json=json) as streaming:
            return Response(streaming.status, streaming.headers, streaming.read())

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> Response:
        return self.request("HEAD", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> Response:
        return self.request("OPTIONS", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Response:
        return self.request("DELETE", path, **kwargs)

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        headers: list[tuple[str, str]] | dict[str, str] | None = None,
        body: bytes = b"",
        json: Any = None,
    ) -> Iterator[StreamingResponse]:
        """Send one request; yield its response once the head is in, its body to read
        with `iter_bytes()`. Leaving the block closes the connection."""
        if self.loop.is_closed():
            raise RuntimeError("this Client is closed")
        raw = self._encode(method, path, headers, body, json)
        self.errors.clear()
        reader = ResponseReader(method)
        transport = MemoryTransport(reader.feed, self._wake, self.address, self.loop)
        connection = self._new_connection()
        transport.protocol = connection

        async def send() -> None:
            connection.connection_made(transport)
            connection.data_received(raw)

        pull = _Pull(self, reader, transport, connection)
        try:
            self._run(send())
            pull.wait(lambda: reader.head_done)
            yield StreamingResponse(reader.status, reader.headers, pull)
        finally:
            pull.finish()

    def websocket_connect(
        self, path: str, *, subprotocols: list[str] | None = None
    ) -> WebSocketSession:
        """Open a WebSocket to `path` (a `WebSocketSession`, rootserve/_testing_ws.py:
        send_text/send_bytes/receive_text/receive_bytes/close, and a context manager).
        A refused handshake raises `WebSocketRejected` with the status and body."""
        return WebSocketSession(self, path, subprotocols or [])

    def _encode(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]] | dict[str, str] | None,
        body: bytes,
        json: Any,
    ) -> bytes:
        fields = list(headers.items() if isinstance(headers, dict) else headers or [])
        names = {name.lower() for name, _ in fields}
        if json is not None:
            body = jsonlib.dumps(json).encode()
            if "content-type" not in names:
                fields.append(("Content-Type", "application/json"))
        if "host" not in names:
            fields.insert(0, ("Host", self.host))
        if (body or method.upper() in ("POST", "PUT", "PATCH")) and not (
            names & {"content-length", "transfer-encoding"}
        ):
            fields.append(("Content-Length", str(len(body))))
        head = f"{method.upper()} {path} HTTP/1.1\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in fields)
        return head.encode("latin-1") + b"\r\n" + body

    # -- the loop ---------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _run(self, work: Any) -> Any:
        """Run `work` (a coroutine) on the client's loop, recording ERROR lines."""
        capture = _Capture(self.errors)
        _error_log.addHandler(capture)
        try:
            return self.loop.run_until_complete(work)
        finally:
            _error_log.removeHandler(capture)

    def _run_soon(self, step: Callable[[], None]) -> None:
        """Call `step` on the client's loop and give what it started one loop pass."""

        async def call() -> None:
            step()
            await asyncio.sleep(0)

        self._run(call())

    def _wait(self, ready: Callable[[], bool], transport: MemoryTransport) -> None:
        """Run the loop until `ready()`, or the server closed the connection."""
        self._run(self._until(ready, transport))

    def _close_transport(self, transport: MemoryTransport) -> None:
        self._run_soon(transport.close)
        self._run_soon(lambda: None)  # connection_lost, scheduled by the close, runs

    async def _until(self, ready: Callable[[], bool], transport: MemoryTransport) -> None:
        deadline = self.loop.time() + TIMEOUT
        while not ready() and not transport.closed:
            self._waiter = self.loop.create_future()
            try:
                await asyncio.wait_for(self._waiter, max(0.0, deadline - self.loop.time()))
            except TimeoutError:
                raise TimeoutError(f"the app did not answer within {TIMEOUT:.0f}s") from None
            finally:
                self._waiter = None


class _Pull:
    """One request's response, pulled from its connection as the caller reads."""

    def __init__(
        self,
        client: Client,
        reader: ResponseReader,
        transport: MemoryTransport,
        connection: Connection,
    ) -> None:
        self.client = client
        self.reader = reader
        self.transport = transport
        self.connection = connection

    def wait(self, ready: Callable[[], bool]) -> None:
        self.client._wait(ready, self.transport)
        if not ready():
            self.reader.closed()  # the server closed: the body ends here, or it is cut off

    def next_piece(self) -> bytes | None:
        reader = self.reader
        if not reader.chunks and not reader.done:
            self.wait(lambda: bool(reader.chunks) or reader.done)
        return reader.take() if reader.chunks else None  # None: the body is over

    def finish(self) -> None:
        """Let the app's call end (when the response is whole), then close the connection."""
        client = self.client
        if client.loop.is_closed():
            return

        async def close() -> None:
            if self.reader.done:
                await self._app_call_over()
            self.transport.close()
            await asyncio.sleep(0)  # connection_lost, scheduled by the close, runs

        client._run(close())

    async def _app_call_over(self) -> None:
        """Wait until this request's app call has returned. Only this one: a WebSocket
        session the test keeps open runs on. The server's running set says when it does
        only once it is empty, so this looks at it each millisecond (a test's wait)."""
        running = self.client._state.running
        deadline = self.client.loop.time() + TIMEOUT
        while any(getattr(item, "conn", None) is self.connection for item in running):
            if self.client.loop.time() > deadline:
                return  # the response is whole: the test goes on, as over a socket
            await asyncio.sleep(0.001)


def client_fixture(app: Any, **options: Any) -> Any:
    """A pytest fixture that yields a `Client(app, **options)` inside its `with` block:

    client = client_fixture(app)          # in conftest.py or a test module
    def test_home(client): assert client.get("/").status == 200
    """
    import pytest  # only when asked for: pytest is not a dependency of rootserve

    @pytest.fixture
    def client() -> Iterator[Client]:
        with Client(app, **options) as test_client:
            yield test_client

    return client
