"""The ASGI 3 contract validator: `asgi(app)` wraps `receive` and `send` of each connection.

How it works: each connection gets one small checker for its scope type (`http`,
`websocket`, `lifespan`; other scope types pass through unchecked). The checker holds the
conversation's state as an enum and sees every message the app sends *before* it reaches
the server, every message the server hands the app, and the app's normal return. A message
the state does not allow, or a field of the wrong type, raises ContractError from `send()`;
an unfinished conversation raises it when the app returns. Exceptions of the app itself
pass through untouched, and messages are forwarded as the same objects.

What the spec allows is not flagged: extra keys in messages, an empty body, headers as any
re-iterable of pairs, `receive()` called again after a disconnect, a websocket app that
returns without accepting (the server answers 403), and an app that stops answering after
the client disconnected. Response header names are checked for type only: the spec asks
for them lowercased ("Response Start"), but Django's ASGI handler sends them as written
(`Content-Type`), and HTTP field names are case-insensitive (RFC 9110 section 5.1), so no
client can tell; flagging it would flag every Django app. Headers given as a one-shot
iterator (a generator) are not inspected, since reading them would consume them.
`scope["asgi"]["spec_version"]` changes none of these rules (it announces fields such as
`trailers` that an app may send regardless), so it is not read.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn, Protocol

from rootserve.types import ASGIApp, Receive, ReceiveMessage, Scope, Send, SendMessage
from rootserve.validate._errors import ContractError

__all__ = ["asgi"]

_HTTP_SPEC = "ASGI HTTP spec"
_WS_SPEC = "ASGI WebSocket spec"
_LIFESPAN_SPEC = "ASGI lifespan spec"


def asgi(app: Any) -> ASGIApp:
    """Return `app` wrapped so that each rule of the ASGI 3 contract it breaks raises a
    ContractError naming the rule; a correct app behaves exactly as before. (`Any`:
    frameworks type receive and send more loosely than rootserve.types does.)"""

    async def validated(scope: Scope, receive: Receive, send: Send) -> None:
        make = _CHECKERS.get(scope.get("type"))
        if make is None:
            await app(scope, receive, send)
            return
        checker = make(scope)

        async def checked_receive() -> ReceiveMessage:
            message = await receive()
            checker.received(message)
            return message

        async def checked_send(message: SendMessage) -> None:
            checker.sent(message)
            await send(message)

        await app(scope, checked_receive, checked_send)
        checker.returned()

    return validated


def _section(spec: str, name: str) -> str:
    return f'{spec}, "{name}"'


def _type_of(message: object, contract: str) -> str:
    """The message's `type`, after checking it is a dict with a str `type`."""
    section = 'ASGI spec, "Events"'
    if not isinstance(message, dict):
        raise ContractError(contract, f"message is a {type(message).__name__}, not a dict", section)
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ContractError(contract, f"message 'type' is {kind!r}, not a str", section)
    return kind


def _field(contract: str, section: str, kind: str, key: str, value: object, want: str) -> NoReturn:
    raise ContractError(contract, f"{kind!r} {key!r} must be {want}, got {value!r}", section)


def _check_bytes(contract: str, section: str, m: Mapping[str, Any], key: str) -> None:
    value = m.get(key, b"")
    if not isinstance(value, bytes):
        _field(contract, section, m["type"], key, value, "bytes")


def _check_bool(contract: str, section: str, m: Mapping[str, Any], key: str) -> bool:
    value = m.get(key, False)
    if not isinstance(value, bool):
        _field(contract, section, m["type"], key, value, "a bool")
    return bool(value)


def _check_status(contract: str, section: str, m: Mapping[str, Any]) -> None:
    status = m.get("status")
    # HTTPStatus is an int subclass and welcome; bool is one too, and is not a status.
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        _field(contract, section, m["type"], "status", status, "an int from 100 to 599")


def _check_headers(contract: str, section: str, m: Mapping[str, Any]) -> None:
    headers = m.get("headers", ())
    want = "an iterable of [name, value] pairs of bytes"
    if isinstance(headers, (str, bytes, Mapping)) or not hasattr(headers, "__iter__"):
        _field(contract, section, m["type"], "headers", headers, want)
    if isinstance(headers, Iterator):
        return  # one-shot: reading it here would leave nothing for the server
    for pair in headers:
        if isinstance(pair, (str, bytes, Iterator)):
            _field(contract, section, m["type"], "headers", pair, want)
        try:
            name, value = pair
        except (TypeError, ValueError):
            _field(contract, section, m["type"], "headers", pair, want)
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            _field(contract, section, m["type"], "headers", pair, want)


class _Checker(Protocol):
    """One connection's conversation: what the app sent, what it received, its return."""

    def sent(self, message: SendMessage) -> None: ...
    def received(self, message: ReceiveMessage) -> None: ...
    def returned(self) -> None: ...


class _Http(enum.Enum):
    START = "start"  # nothing sent yet
    BODY = "body"  # start sent, body (more) expected
    TRAILERS = "trailers"  # last body sent, trailers announced and expected
    DONE = "done"


_HTTP_TYPES = ("http.response.start", "http.response.body", "http.response.trailers")


class _HttpChecker:
    contract = "ASGI http"

    def __init__(self, scope: Scope) -> None:
        self.extensions: Mapping[str, Any] = scope.get("extensions") or {}
        self.state = _Http.START
        self.trailers = False
        self.disconnected = False

    def _error(self, what: str, name: str) -> ContractError:
        return ContractError(self.contract, what, _section(_HTTP_SPEC, name))

    def sent(self, message: SendMessage) -> None:
        kind = _type_of(message, self.contract)
        m: Mapping[str, Any] = message
        pathsend = kind == "http.response.pathsend" and kind in self.extensions
        if kind not in _HTTP_TYPES and not pathsend:
            raise ContractError(
                self.contract,
                f"unknown message type {kind!r} for scope type 'http'",
                _HTTP_SPEC,
            )
        if kind == "http.response.trailers" and not self.trailers and self.state is not _Http.START:
            raise self._error(
                f"{kind!r} sent but 'http.response.start' did not set 'trailers': True",
                "Response Trailers",
            )
        if self.state is _Http.DONE:
            raise self._error(f"{kind!r} sent after the response was complete", "Response Body")
        if kind == "http.response.start":
            section = _section(_HTTP_SPEC, "Response Start")
            if self.state is not _Http.START:
                raise self._error("'http.response.start' sent twice", "Response Start")
            _check_status(self.contract, section, m)
            _check_headers(self.contract, section, m)
            self.trailers = _check_bool(self.contract, section, m, "trailers")
            self.state = _Http.BODY
        elif kind == "http.response.trailers":
            section = _section(_HTTP_SPEC, "Response Trailers")
            if self.state is _Http.START:
                raise self._error(f"{kind!r} sent before 'http.response.start'", "Response Start")
            if self.state is _Http.BODY:
                raise self._error(
                    f"{kind!r} sent before the last 'http.response.body'", "Response Trailers"
                )
            _check_headers(self.contract, section, m)
            if not _check_bool(self.contract, section, m, "more_trailers"):
                self.state = _Http.DONE
        else:  # a body: http.response.body, or the pathsend extension's final body
            section = _section(_HTTP_SPEC, "Response Body")
            if self.state is _Http.START:
                raise self._error(f"{kind!r} sent before 'http.response.start'", "Response Start")
            if self.state is _Http.TRAILERS:
                raise self._error(
                    f"{kind!r} sent after the last 'http.response.body'", "Response Body"
                )
            if pathsend:
                more = False
            else:
                _check_bytes(self.contract, section, m, "body")
                more = _check_bool(self.contract, section, m, "more_body")
            if not more:
                self.state = _Http.TRAILERS if self.trailers else _Http.DONE

    def received(self, message: ReceiveMessage) -> None:
        if message.get("type") == "http.disconnect":
            self.disconnected = True

    def returned(self) -> None:
        # After a disconnect the app may stop mid-response: there is no one left to answer.
        if self.disconnected or self.state is _Http.DONE:
            return
        if self.state is _Http.START:
            raise self._error(
                "app returned without sending 'http.response.start'", "Response Start"
            )
        if self.state is _Http.BODY:
            raise self._error(
                "app returned before the last 'http.response.body' (more_body False)",
                "Response Body",
            )
        raise self._error(
            "app returned before the last 'http.response.trailers'", "Response Trailers"
        )


class _Ws(enum.Enum):
    CONNECTING = "connecting"  # neither accepted nor closed
    OPEN = "open"  # accepted
    DENYING = "denying"  # denial response started, more body expected
    ENDED = "ended"  # closed, or the denial response finished


class _WebSocketChecker:
    contract = "ASGI websocket"

    def __init__(self, scope: Scope) -> None:
        self.extensions: Mapping[str, Any] = scope.get("extensions") or {}
        self.offered: list[str] = list(scope.get("subprotocols") or ())
        self.state = _Ws.CONNECTING
        self.ended_by = ""
        self.disconnected = False

    def _error(self, what: str, name: str) -> ContractError:
        return ContractError(self.contract, what, _section(_WS_SPEC, name))

    def sent(self, message: SendMessage) -> None:
        kind = _type_of(message, self.contract)
        m: Mapping[str, Any] = message
        section = _WS_SECTIONS.get(kind)
        if section is None:
            raise ContractError(
                self.contract, f"unknown message type {kind!r} for scope type 'websocket'", _WS_SPEC
            )
        denial = kind.startswith("websocket.http.")
        if denial and "websocket.http.response" not in self.extensions:
            raise self._error(
                f"{kind!r} sent but the server did not offer the 'websocket.http.response'"
                " extension",
                section,
            )
        if self.state is _Ws.ENDED:
            raise self._error(f"{kind!r} sent after {self.ended_by}", section)
        if self.state is _Ws.DENYING and kind != "websocket.http.response.body":
            raise self._error(
                f"{kind!r} sent before the last 'websocket.http.response.body'", section
            )
        full = _section(_WS_SPEC, section)
        if kind == "websocket.accept":
            if self.state is _Ws.OPEN:
                raise self._error("'websocket.accept' sent twice", section)
            subprotocol = m.get("subprotocol")
            if subprotocol is not None and subprotocol not in self.offered:
                raise self._error(
                    f"'websocket.accept' subprotocol {subprotocol!r} was not offered by the"
                    f" client (offered: {self.offered!r})",
                    section,
                )
            _check_headers(self.contract, full, m)
            self.state = _Ws.OPEN
        elif kind == "websocket.send":
            if self.state is _Ws.CONNECTING:
                raise self._error("'websocket.send' sent before 'websocket.accept'", section)
            data, text = m.get("bytes"), m.get("text")
            if (data is None) == (text is None):
                raise self._error(
                    "'websocket.send' must have exactly one of 'bytes' and 'text' not None",
                    section,
                )
            if data is not None and not isinstance(data, bytes):
                _field(self.contract, full, kind, "bytes", data, "bytes or None")
            if text is not None and not isinstance(text, str):
                _field(self.contract, full, kind, "text", text, "a str or None")
        elif kind == "websocket.close":
            code = m.get("code", 1000)
            if not isinstance(code, int) or isinstance(code, bool):
                _field(self.contract, full, kind, "code", code, "an int")
            reason = m.get("reason")
            if reason is not None and not isinstance(reason, str):
                _field(self.contract, full, kind, "reason", reason, "a str")
            self.state, self.ended_by = _Ws.ENDED, "'websocket.close'"
        elif kind == "websocket.http.response.start":
            if self.state is not _Ws.CONNECTING:
                raise self._error(f"{kind!r} sent after 'websocket.accept'", section)
            _check_status(self.contract, full, m)
            _check_headers(self.contract, full, m)
            self.state = _Ws.DENYING
        else:  # websocket.http.response.body
            if self.state is not _Ws.DENYING:
                raise self._error(f"{kind!r} sent before 'websocket.http.response.start'", section)
            _check_bytes(self.contract, full, m, "body")
            if not _check_bool(self.contract, full, m, "more_body"):
                self.state, self.ended_by = _Ws.ENDED, "the denial response was complete"

    def received(self, message: ReceiveMessage) -> None:
        if message.get("type") == "websocket.disconnect":
            self.disconnected = True

    def returned(self) -> None:
        if self.state is _Ws.DENYING and not self.disconnected:
            raise self._error(
                "app returned before the last 'websocket.http.response.body' (more_body False)",
                "Websocket Denial Response",
            )


_WS_SECTIONS = {
    "websocket.accept": "Accept - send event",
    "websocket.send": "Send - send event",
    "websocket.close": "Close - send event",
    "websocket.http.response.start": "Websocket Denial Response",
    "websocket.http.response.body": "Websocket Denial Response",
}


class _LifespanChecker:
    contract = "ASGI lifespan"

    def __init__(self, scope: Scope) -> None:
        # phase ("startup" or "shutdown") -> received it?, and the answer sent, if any
        self.asked: dict[str, bool] = {"startup": False, "shutdown": False}
        self.answered: dict[str, str] = {}

    def received(self, message: ReceiveMessage) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup":
            self.asked["startup"] = True
        elif kind == "lifespan.shutdown":
            self.asked["shutdown"] = True

    def sent(self, message: SendMessage) -> None:
        kind = _type_of(message, self.contract)
        m: Mapping[str, Any] = message
        answer = _LIFESPAN_ANSWERS.get(kind)
        if answer is None:
            raise ContractError(
                self.contract,
                f"unknown message type {kind!r} for scope type 'lifespan'",
                _LIFESPAN_SPEC,
            )
        phase, name = answer
        section = _section(_LIFESPAN_SPEC, name)
        if not self.asked[phase]:
            raise ContractError(
                self.contract,
                f"{kind!r} sent before 'lifespan.{phase}' was received",
                _section(_LIFESPAN_SPEC, f"{phase.title()} - receive event"),
            )
        earlier = self.answered.get(phase)
        if earlier is not None:
            raise ContractError(self.contract, f"{kind!r} sent after {earlier!r}", section)
        if kind.endswith(".failed"):
            text = m.get("message", "")
            if not isinstance(text, str):
                _field(self.contract, section, kind, "message", text, "a str")
        self.answered[phase] = kind

    def returned(self) -> None:
        """Nothing to check: the lifespan spec orders a lifespan app's answers, not its
        return, and a server carries on without lifespan events when the app stops."""


# message type -> (the phase it answers, its section of the lifespan spec)
_LIFESPAN_ANSWERS = {
    "lifespan.startup.complete": ("startup", "Startup Complete - send event"),
    "lifespan.startup.failed": ("startup", "Startup Failed - send event"),
    "lifespan.shutdown.complete": ("shutdown", "Shutdown Complete - send event"),
    "lifespan.shutdown.failed": ("shutdown", "Shutdown Failed - send event"),
}


_CHECKERS: dict[object, Callable[[Scope], _Checker]] = {
    "http": _HttpChecker,
    "websocket": _WebSocketChecker,
    "lifespan": _LifespanChecker,
}
