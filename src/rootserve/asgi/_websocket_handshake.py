"""The server side of the WebSocket opening handshake (RFC 6455 section 4.2), and
permessage-deflate negotiation (RFC 7692 section 7.1) through the `websockets` library.

`check_handshake(request)` reads the fields of a request that asked to switch to WebSocket
(the HTTP layer already made sure it is a bodiless HTTP/1.1 request with `Connection:
upgrade` and an Upgrade naming websocket) and returns either a `Handshake`, what the 101
answer and the session need, or a `Refusal`, the HTTP error to answer instead: the app never
sees a request that is no valid handshake.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from websockets.exceptions import InvalidHandshake, NegotiationError
from websockets.extensions.base import Extension, ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.headers import build_extension, parse_extension

from rootserve.protocol.events import Head, Headers

__all__ = ["Handshake", "Refusal", "accept_key", "check_handshake", "deflate_factory"]

# RFC 6455 section 1.3: the GUID appended to the key before hashing.
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_VERSION: Final = b"13"  # RFC 6455 section 4.1, the only version
_KEY_BYTES: Final = 16  # RFC 6455 section 4.1: a base64-encoded 16-byte nonce


@dataclass(slots=True)
class Handshake:
    """A valid handshake: its key, the client's subprotocols, the accepted extensions."""

    key: bytes
    subprotocols: list[str] = field(default_factory=list)
    extensions_header: bytes | None = None  # the Sec-WebSocket-Extensions answer
    extensions: list[Extension] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class Refusal:
    """The handshake is refused with this HTTP answer; the connection closes after it."""

    status: int
    reason: str
    headers: Headers = field(default_factory=list)


def deflate_factory() -> ServerPerMessageDeflateFactory:
    # The settings uvicorn uses: a 4 KiB window (2**12) each way and a small compressor
    # state keep memory per connection low; compression ratio stays good for small messages.
    return ServerPerMessageDeflateFactory(
        server_max_window_bits=12,
        client_max_window_bits=12,
        compress_settings={"memLevel": 5},
    )


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2, item 5.4)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def check_handshake(
    request: Head, factories: Sequence[ServerExtensionFactory] = ()
) -> Handshake | Refusal:
    """RFC 6455 section 4.2.1, items 1 and 5-10 (2-4 were checked by the HTTP layer)."""
    if request.method != "GET":
        return Refusal(400, "a WebSocket handshake is a GET request (RFC 6455 section 4.1)")
    keys: list[bytes] = []
    versions: list[bytes] = []
    protocols: list[str] = []
    offers: list[bytes] = []
    for name, value in request.headers:
        if not name.startswith(b"sec-websocket-"):
            continue
        if name == b"sec-websocket-key":
            keys.append(value)
        elif name == b"sec-websocket-version":
            versions.append(value)
        elif name == b"sec-websocket-protocol":
            # RFC 6455 section 11.3.4: a list of tokens, over one or more field lines.
            protocols += [p for p in (s.strip() for s in value.decode("latin-1").split(",")) if p]
        elif name == b"sec-websocket-extensions":
            offers.append(value)
    if versions != [_VERSION]:
        # RFC 6455 section 4.4: tell the client which version we speak.
        return Refusal(
            426,
            "the WebSocket version must be 13 (RFC 6455 section 4.4)",
            [(b"sec-websocket-version", _VERSION), (b"upgrade", b"websocket"),
             (b"connection", b"upgrade")],
        )  # fmt: skip
    if len(keys) != 1:
        return Refusal(400, "a WebSocket handshake needs one Sec-WebSocket-Key (RFC 6455 4.1)")
    try:
        nonce = base64.b64decode(keys[0], validate=True)
    except binascii.Error:
        nonce = b""
    if len(nonce) != _KEY_BYTES:
        return Refusal(400, "Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455 section 4.1)")
    handshake = Handshake(keys[0], protocols)
    if offers and factories:
        try:
            _negotiate(handshake, offers, factories)
        except InvalidHandshake as exc:
            return Refusal(400, f"invalid Sec-WebSocket-Extensions: {exc}")
    return handshake


def _negotiate(
    handshake: Handshake, offers: list[bytes], factories: Sequence[ServerExtensionFactory]
) -> None:
    # RFC 6455 section 9.1: the client lists extensions in its order of preference; the
    # server accepts a subset, each at most once here, with the parameters it agrees to.
    answers = []
    for name, params in [e for offer in offers for e in parse_extension(offer.decode("latin-1"))]:
        for factory in factories:
            if factory.name != name:
                continue
            try:
                answer, extension = factory.process_request_params(params, handshake.extensions)
            except NegotiationError:
                continue  # RFC 7692 section 5.1: decline an offer we cannot accept as is
            answers.append((name, answer))
            handshake.extensions.append(extension)
            break
    if answers:
        handshake.extensions_header = build_extension(answers).encode("latin-1")
