"""One call of a WSGI app on an app thread, whoever takes its answer.

`WSGICall` holds the rules of PEP 3333 "Specification Details" that are the app's side of
the contract: start_response with its exc_info rules, the write() callable, walking the body
iterable, and close() on every path. It hands the answer to an `_Output`: the server's
`WSGICycle` (adapter.py) or an ASGI send() (`WSGIMount`, mount.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Final, Protocol

from rootserve.types import WSGIApp, WSGIEnviron
from rootserve.units import KIB
from rootserve.validate._errors import ContractError

__all__ = ["FILE_BLOCK", "FileWrapper", "WSGICall"]

# The answer to a request whose app broke its contract under --strict: the rule, in words.
_CONTRACT_PAGE: Final = ((b"content-type", b"text/plain; charset=utf-8"),)

logger = logging.getLogger("rootserve.error")

FILE_BLOCK: Final = 256 * KIB
_STATUS: Final = re.compile(r"[1-9][0-9]{2} [^\r\n\x00]*")
_STATUS_CODES: dict[str, int] = {}  # status lines already checked, and their codes


class FileWrapper:
    """`wsgi.file_wrapper` (PEP 3333 "Optional Platform-Specific File Handling")."""

    def __init__(self, filelike: Any, blksize: int = FILE_BLOCK) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> FileWrapper:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return bytes(data)
        raise StopIteration


class _Output(Protocol):
    """Where a WSGICall hands the response: the connection, or an ASGI send()."""

    disconnected: bool

    def hand_whole(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None: ...
    def hand_head(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None: ...
    def hand_chunk(self, body: bytes) -> None: ...
    def hand_end(self) -> None: ...
    def hand_error(self, sent: bool) -> None: ...
    def hand_nothing(self) -> None: ...
    def can_send_file(self) -> bool: ...
    def hand_file(self, status: int, headers: list[tuple[bytes, bytes]], file: Any) -> None: ...
    def describe(self) -> str: ...


class WSGICall:
    """One call of a WSGI app on an app thread (PEP 3333 "Specification Details"):
    start_response with its exc_info rules, the write() callable, walking the body
    iterable, and close() on every path: success, client gone, exception."""

    __slots__ = ("headers", "out", "sent", "status")

    def __init__(self, out: _Output) -> None:
        self.out = out
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.sent = False  # the head was handed over

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        # PEP 3333 "The start_response() Callable".
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.headers is not None:
            raise AssertionError("start_response was already called (PEP 3333: pass exc_info)")
        self.status, self.headers = _check_start(status, headers)
        return self.write

    def write(self, data: bytes) -> None:
        """The imperative write() callable: sends at once (PEP 3333 "The write() Callable")."""
        if self.headers is None:
            raise AssertionError("write() before start_response()")
        if type(data) is not bytes:
            raise TypeError(f"write() takes bytes, got {type(data).__name__}")
        self._hand(data)

    def _hand(self, chunk: bytes) -> None:
        out = self.out
        if out.disconnected:
            return
        if not self.sent:
            self.sent = True
            assert self.headers is not None
            out.hand_head(self.status, self.headers, chunk)
        else:
            out.hand_chunk(chunk)

    def run(self, app: WSGIApp, environ: WSGIEnviron) -> None:
        out = self.out
        # Any, not `Iterable[bytes] | None`: the compiled build checks a narrowed type where
        # the `finally` below reads it, and refused a FileWrapper there.
        result: Any = None
        try:
            result = app(environ, self.start_response)
            if (
                type(result) is FileWrapper
                and self.headers is not None
                and not self.sent
                and out.can_send_file()
                and hasattr(result.filelike, "fileno")
            ):
                out.hand_file(self.status, self.headers, result.filelike)
                return
            if type(result) is list and len(result) <= 1 and not self.sent:
                # The common case: the whole body at once, handed over in one piece.
                body = result[0] if result else b""
                if type(body) is not bytes:
                    raise TypeError(f"the body iterable gave {type(body).__name__}, not bytes")
                if self.headers is None:
                    raise AssertionError("the app returned without calling start_response")
                if type(result) is not list:  # a list has no close(): no call to learn that
                    _close(result)
                result = None
                if out.disconnected:
                    out.hand_nothing()
                else:
                    out.hand_whole(self.status, self.headers, body)
                return
            for chunk in result:
                if type(chunk) is not bytes:
                    raise TypeError(f"the body iterable gave {type(chunk).__name__}, not bytes")
                if out.disconnected:
                    break
                if chunk:
                    self._hand(chunk)
            if self.headers is None:
                raise AssertionError("the app returned without calling start_response")
            # close() before the last hand-over, which finishes the exchange: the call is
            # over, close() included, when the server counts the request done (a drain,
            # rootserve.testing and --trace wait for that).
            _close(result)
            result = None
            if out.disconnected:
                out.hand_nothing()
            elif not self.sent:
                out.hand_whole(self.status, self.headers, b"")
            else:
                out.hand_end()
        except ContractError as exc:  # --strict: the rule, not a traceback; a page saying it
            if result is not None:
                _close(result)
                result = None
            logger.error("%s: %s", out.describe(), exc)
            if self.sent or out.disconnected:
                out.hand_error(self.sent)
            else:
                out.hand_whole(500, list(_CONTRACT_PAGE), str(exc).encode())
        except Exception as exc:
            if result is not None:
                _close(result)
                result = None
            if not out.disconnected:
                logger.error("Exception in WSGI app for %s", out.describe(), exc_info=exc)
            out.hand_error(self.sent)
        finally:
            if result is not None:
                _close(result)


def _close(result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        try:
            close()
        except Exception as exc:
            logger.error("Exception in the body iterable's close()", exc_info=exc)


def _check_start(
    status: str, headers: list[tuple[str, str]]
) -> tuple[int, list[tuple[bytes, bytes]]]:
    """PEP 3333 "The start_response() Callable": the status is a native string such as
    "200 OK" and each header a (name, value) tuple of native strings. CR, LF or NUL in a
    header (response splitting) is found, and named, when the head is framed."""
    code = _STATUS_CODES.get(status)
    if code is None:
        if type(status) is not str or _STATUS.fullmatch(status) is None:
            raise ValueError(f"start_response status must be a str like '200 OK', got {status!r}")
        code = int(status[:3])
        if len(_STATUS_CODES) < 256:
            _STATUS_CODES[status] = code
    out = []
    try:
        for name, value in headers:
            out.append((name.encode("latin-1"), value.encode("latin-1")))
    except (TypeError, ValueError, AttributeError):
        for pair in headers:
            if type(pair) is not tuple or len(pair) != 2 or not all(type(x) is str for x in pair):
                raise TypeError(f"each header must be a (str, str) tuple, got {pair!r}") from None
            for text in pair:
                try:
                    text.encode("latin-1")
                except UnicodeEncodeError:
                    raise ValueError(
                        f"header {pair[0]!r} is not latin-1 text (PEP 3333: ISO-8859-1 only)"
                    ) from None
        raise
    return code, out
