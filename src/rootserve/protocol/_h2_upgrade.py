"""The h2c upgrade (RFC 7540 section 3.2), a part of `H2ServerConnection` (http2.py).

How this works. RFC 9113 section 3.1 deprecates the upgrade, but clients still send it
(`curl --http2` on an http URL). An HTTP/1.1 request asks for it when `h2c_settings` finds
its fields (Upgrade, Connection, HTTP2-Settings); the server reads it whole on HTTP/1.1,
body included (RFC 7540 section 3.2: a client sends no frame before the 101), answers
`H2C_SWITCH`, and the HTTP/2 connection begins with `upgrade`: the client's HTTP2-Settings
are its first SETTINGS and the request is stream 1, half-closed on the client's side, its
body given to the app as if it had come in DATA frames. Over TLS an upgrade is ignored
(RFC 7540 section 3.2: h2c is HTTP/2 over cleartext; ALPN does it there).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import h2.exceptions
from hyperframe.exceptions import HyperframeError

from rootserve.protocol._h2_events import BodyEnded, BodyReceived, H2Event, RequestReceived
from rootserve.protocol._h2_send import Stream
from rootserve.protocol.events import Request

__all__ = ["H2C_SWITCH", "UpgradeSide", "h2c_settings"]

# RFC 7540 section 3.2: the answer that switches an HTTP/1.1 connection to h2c.
H2C_SWITCH: Final = (
    b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
)
# The fields of an h2c upgrade request that were about its HTTP/1.1 connection (RFC 9113
# section 8.2.2), left out of stream 1's request.
_HOP_FIELDS: Final = frozenset(
    {b"connection", b"upgrade", b"http2-settings", b"keep-alive", b"proxy-connection", b"te"}
)


# RFC 7540 section 3.2.1: HTTP2-Settings is a SETTINGS payload in base64url (RFC 4648
# section 5), trailing "=" left out (Python's decoder would skip any other byte silently).
_BASE64URL: Final = re.compile(rb"[A-Za-z0-9_-]*")


def h2c_settings(request: Request) -> bytes | None:
    """The HTTP2-Settings of an HTTP/1.1 request that asks to switch to h2c (RFC 7540
    section 3.2): its Upgrade names `h2c`, its Connection names `Upgrade` and
    `HTTP2-Settings`, and it has exactly one HTTP2-Settings field. None otherwise: the
    request is then answered as HTTP/1.1 (section 3.2.1: no upgrade without the field;
    RFC 9110 section 7.8 lets a server ignore Upgrade)."""
    if b"h2c" not in _members(request.upgrade):
        return None
    options: list[bytes] = []
    settings: list[bytes] = []
    for name, value in request.headers:
        if name == b"connection":
            options += _members(value)
        elif name == b"http2-settings":
            settings.append(value)
    if len(settings) != 1 or b"upgrade" not in options or b"http2-settings" not in options:
        return None
    return settings[0]


def _members(value: bytes) -> list[bytes]:
    # RFC 9110 section 5.6.1: a list, its members compared case-insensitively.
    return [member.strip(b" \t").lower() for member in value.split(b",")]


class UpgradeSide:
    """The h2c part of H2ServerConnection (which sets these attributes up)."""

    _request_class: Callable[..., Request]
    _streams: dict[int, Stream]

    if TYPE_CHECKING:

        def initiate(self, upgrade_settings: bytes | None = None) -> None: ...

    def upgrade(self, settings: bytes, request: Request, body: bytes) -> list[H2Event]:
        """Begin as the h2c upgrade of `request` (RFC 7540 section 3.2), an HTTP/1.1
        request read whole with its `body`, once `H2C_SWITCH` is to be sent: `settings`
        (its HTTP2-Settings) are the client's first SETTINGS, and the request is stream 1,
        half-closed on the client's side. Returns stream 1's events. Raises ValueError,
        before anything is queued to send, when `settings` is not a valid SETTINGS payload
        in base64url (the request is then answered 400 on HTTP/1.1)."""
        settings = settings.rstrip(b"=")
        if _BASE64URL.fullmatch(settings) is None:
            raise ValueError("invalid HTTP2-Settings: not base64url")
        try:
            self.initiate(settings + b"=" * (-len(settings) % 4))
        except (binascii.Error, HyperframeError, h2.exceptions.H2Error, ValueError) as exc:
            raise ValueError(f"invalid HTTP2-Settings: {exc}") from None
        stream = Stream(1, request.method, False)
        stream.received = len(body)
        self._streams[1] = stream
        upgraded = self._request_class(
            method=request.method,
            target=request.target,
            path=request.path,
            query=request.query,
            http_version="2",
            headers=[(name, value) for name, value in request.headers if name not in _HOP_FIELDS],
            keep_alive=True,
            has_body=bool(body),
        )
        if not body:
            return [RequestReceived(1, upgraded)]
        return [RequestReceived(1, upgraded), BodyReceived(1, body, 0), BodyEnded(1)]
