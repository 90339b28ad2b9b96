"""The two contracts as types: ASGI 3 (the app is `async (scope, receive, send)`) and WSGI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any, Protocol, TypeAlias

__all__ = [
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "StartResponse",
    "WSGIApp",
    "WSGIEnviron",
]

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

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
