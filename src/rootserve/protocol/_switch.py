"""Switching protocols (RFC 9110 section 7.8), a part of `HTTP11Connection`.

A bodiless HTTP/1.1 request whose Upgrade names `websocket` stops the receive side: the
request comes out and the bytes after it are held. The server then switches
(`send_switching_protocols`, then `take_upgrade_data`), refuses (`refuse_upgrade`; the
connection closes), or goes on with HTTP (`resume_after_upgrade`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from rootserve.protocol._send import SendSide, check_field, date_header, error_response
from rootserve.protocol._states import RECEIVE_OPEN, SWITCHED, UPGRADE
from rootserve.protocol.events import ConnectionClosed, Event, Headers, Request
from rootserve.protocol.rules import LocalProtocolError

__all__ = ["SwitchSide"]

_SWITCHING_LINE: Final = b"HTTP/1.1 101 Switching Protocols\r\n"


class SwitchSide(SendSide):
    """The protocol-switching layer of HTTP11Connection, over the send layer."""

    _held: bytes
    _held_eof: bool
    upgrade_request: Request | None

    # HTTP11Connection's own, which overrides it (a layer calls up only through a method
    # it declares: mypyc, which compiles these modules, needs each one defined).
    def receive_data(self, data: bytes) -> list[Event]:
        raise NotImplementedError

    @property
    def held_bytes(self) -> int:
        """Bytes received after a request that asked to switch, not yet handed over."""
        return len(self._held)

    def _upgrade_at_head(self) -> Request:
        request = self.upgrade_request
        if self._state is not UPGRADE or request is None:
            raise LocalProtocolError("no request is waiting to switch protocols")
        if not self._requests or self._requests[0] is not request or self._started:
            # RFC 9112 section 9.3.2: the answers before it go out first.
            raise LocalProtocolError("the requests before the upgrade are not answered yet")
        return request

    def send_switching_protocols(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """The 101 answer to the request that asked to switch (RFC 9110 section 15.2.2);
        `headers` are the new protocol's fields. After it, no more HTTP: the bytes that
        follow are the new protocol's (`take_upgrade_data`)."""
        self._upgrade_at_head()
        lines = [_SWITCHING_LINE]
        add = lines.append
        for name, value in headers:
            check_field(name, value)
            add(name + b": " + value + b"\r\n")
        if self._server_line:
            add(self._server_line)
        if self._add_date:
            add(date_header())
        add(b"\r\n")
        head = b"".join(lines)
        self._requests.popleft()
        self._state = SWITCHED
        return head

    def take_upgrade_data(self) -> bytes:
        """After the 101: the bytes received after the request, for the new protocol."""
        if self._state is not SWITCHED:
            raise LocalProtocolError("no 101 (Switching Protocols) was sent")
        held, self._held = self._held, b""
        return held

    def refuse_upgrade(self, status: int, reason: str, headers: Headers | None = None) -> bytes:
        """A complete error answer to the request that asked to switch (400, 403, 426, 500,
        503...); the connection closes after it, so the held bytes are never parsed."""
        self._upgrade_at_head()
        extra = []
        connection = b"close"
        for name, value in headers or ():
            check_field(name, value)
            if name.lower() == b"connection":
                # RFC 9110 section 7.8: a 426 names `upgrade` in Connection; we also close.
                connection = value + b", close"
            else:
                extra.append(name + b": " + value + b"\r\n")
        self.abandon()
        return error_response(
            status,
            reason,
            server_header=self._server_line,
            extra_headers=b"".join(extra),
            connection=connection,
        )

    def resume_after_upgrade(self) -> list[Event]:
        """Do not switch: the request is answered as a plain one (RFC 9110 section 7.8 lets
        a server ignore Upgrade), and the held bytes are parsed as the requests after it.
        Returns their events."""
        if self._state is not UPGRADE:
            raise LocalProtocolError("no request is waiting to switch protocols")
        self._state = RECEIVE_OPEN
        self.upgrade_request = None
        held, self._held = self._held, b""
        events = self.receive_data(held) if held else []
        if self._held_eof:
            # ConnectionClosed came out already, when the EOF arrived.
            events += [e for e in self.receive_data(b"") if type(e) is not ConnectionClosed]
        return events
