"""The two contracts as types: ASGI 3 (the app is `async (scope, receive, send)`) and WSGI.

ASGI messages are TypedDicts, one per message type of the ASGI spec 2.4 (HTTP, WebSocket
and lifespan): what the server hands the app (`ReceiveMessage`) and what the app sends
(`SendMessage`). The server still checks what an app sends at run time: an app is not
type-checked, and its messages are only as good as its code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any, Literal, NotRequired, Protocol, TypeAlias, TypedDict

__all__ = [
    "ASGIApp",
    "HTTPDisconnectMessage",
    "HTTPReceiveMessage",
    "HTTPRequestMessage",
    "HTTPResponseBodyMessage",
    "HTTPResponseStartMessage",
    "HTTPResponseTrailersMessage",
    "LifespanEvent",
    "LifespanShutdownCompleteMessage",
    "LifespanShutdownFailedMessage",
    "LifespanShutdownMessage",
    "LifespanStartupCompleteMessage",
    "LifespanStartupFailedMessage",
    "LifespanStartupMessage",
    "Message",
    "Receive",
    "ReceiveMessage",
    "Scope",
    "Send",
    "SendMessage",
    "StartResponse",
    "WSGIApp",
    "WSGIEnviron",
    "WebSocketAcceptMessage",
    "WebSocketCloseMessage",
    "WebSocketConnectMessage",
    "WebSocketDisconnectMessage",
    "WebSocketEvent",
    "WebSocketReceiveMessage",
    "WebSocketResponseBodyMessage",
    "WebSocketResponseStartMessage",
    "WebSocketSendMessage",
]

Scope: TypeAlias = MutableMapping[str, Any]
Headers: TypeAlias = Iterable[tuple[bytes, bytes]]

# -- HTTP (ASGI HTTP spec 2.4) --------------------------------------------------------------


class HTTPRequestMessage(TypedDict):
    type: Literal["http.request"]
    body: bytes
    more_body: bool


class HTTPDisconnectMessage(TypedDict):
    type: Literal["http.disconnect"]


class HTTPResponseStartMessage(TypedDict):
    type: Literal["http.response.start"]
    status: int
    headers: NotRequired[Headers]
    trailers: NotRequired[bool]


class HTTPResponseBodyMessage(TypedDict):
    type: Literal["http.response.body"]
    body: NotRequired[bytes]
    more_body: NotRequired[bool]


class HTTPResponseTrailersMessage(TypedDict):
    """ASGI HTTP Trailers extension: after the body of a start that said `trailers`."""

    type: Literal["http.response.trailers"]
    headers: NotRequired[Headers]
    more_trailers: NotRequired[bool]


# -- WebSocket (ASGI WebSocket spec 2.4, with the denial response extension) -----------------


class WebSocketConnectMessage(TypedDict):
    type: Literal["websocket.connect"]


class WebSocketReceiveMessage(TypedDict):
    type: Literal["websocket.receive"]
    bytes: NotRequired[bytes | None]
    text: NotRequired[str | None]


class WebSocketDisconnectMessage(TypedDict):
    type: Literal["websocket.disconnect"]
    code: int
    reason: NotRequired[str]


class WebSocketAcceptMessage(TypedDict):
    type: Literal["websocket.accept"]
    subprotocol: NotRequired[str | None]
    headers: NotRequired[Headers]


class WebSocketSendMessage(TypedDict):
    type: Literal["websocket.send"]
    bytes: NotRequired[bytes | None]
    text: NotRequired[str | None]


class WebSocketCloseMessage(TypedDict):
    type: Literal["websocket.close"]
    code: NotRequired[int]
    reason: NotRequired[str | None]


class WebSocketResponseStartMessage(TypedDict):
    type: Literal["websocket.http.response.start"]
    status: int
    headers: NotRequired[Headers]


class WebSocketResponseBodyMessage(TypedDict):
    type: Literal["websocket.http.response.body"]
    body: NotRequired[bytes]
    more_body: NotRequired[bool]


# -- lifespan (ASGI lifespan spec 2.0) -----------------------------------------------------


class LifespanStartupMessage(TypedDict):
    type: Literal["lifespan.startup"]


class LifespanShutdownMessage(TypedDict):
    type: Literal["lifespan.shutdown"]


class LifespanStartupCompleteMessage(TypedDict):
    type: Literal["lifespan.startup.complete"]


class LifespanStartupFailedMessage(TypedDict):
    type: Literal["lifespan.startup.failed"]
    message: NotRequired[str]


class LifespanShutdownCompleteMessage(TypedDict):
    type: Literal["lifespan.shutdown.complete"]


class LifespanShutdownFailedMessage(TypedDict):
    type: Literal["lifespan.shutdown.failed"]
    message: NotRequired[str]


ReceiveMessage: TypeAlias = (
    HTTPRequestMessage
    | HTTPDisconnectMessage
    | WebSocketConnectMessage
    | WebSocketReceiveMessage
    | WebSocketDisconnectMessage
    | LifespanStartupMessage
    | LifespanShutdownMessage
)
SendMessage: TypeAlias = (
    HTTPResponseStartMessage
    | HTTPResponseBodyMessage
    | HTTPResponseTrailersMessage
    | WebSocketAcceptMessage
    | WebSocketSendMessage
    | WebSocketCloseMessage
    | WebSocketResponseStartMessage
    | WebSocketResponseBodyMessage
    | LifespanStartupCompleteMessage
    | LifespanStartupFailedMessage
    | LifespanShutdownCompleteMessage
    | LifespanShutdownFailedMessage
)
# What the server hands the app, by scope type.
HTTPReceiveMessage: TypeAlias = HTTPRequestMessage | HTTPDisconnectMessage
WebSocketEvent: TypeAlias = (
    WebSocketConnectMessage | WebSocketReceiveMessage | WebSocketDisconnectMessage
)
LifespanEvent: TypeAlias = LifespanStartupMessage | LifespanShutdownMessage
Message: TypeAlias = ReceiveMessage | SendMessage
Receive: TypeAlias = Callable[[], Awaitable[ReceiveMessage]]
Send: TypeAlias = Callable[[SendMessage], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

# -- WSGI (PEP 3333) ------------------------------------------------------------------------

ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType]
WSGIEnviron: TypeAlias = dict[str, Any]


class StartResponse(Protocol):
    def __call__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = ...,
        /,
    ) -> Callable[[bytes], object]: ...


WSGIApp: TypeAlias = Callable[[WSGIEnviron, StartResponse], Iterable[bytes]]
