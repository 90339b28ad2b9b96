"""`wsgi(app)`: a PEP 3333 validator placed between a server and a WSGI app.

How it works: the wrapper checks the environ the server hands over (server-side rules, their
messages start `WSGI server:`), then calls the app with its own start_response and write()
that check the status, the headers, the exc_info rules and every written chunk before
passing them on to the server's. The app's result comes back wrapped in `_Body`, which checks
each chunk as the server pulls it and forwards close() to the app's iterable. Every broken
rule raises a ContractError naming the rule and its PEP 3333 section; a correct app's bytes,
headers and calls reach the server unchanged.

Two things pass through unwrapped on purpose:
- a result of the server's own `wsgi.file_wrapper` class (checked only for start_response
  having been called), so the server still recognizes it and can use sendfile;
- `wsgi.input`, because Werkzeug calls `read()` with no size when the server sets
  `wsgi.input_terminated`, which a strict `read(size)` check would flag.

close() is forwarded, not judged: a server that never calls it is only visible when the
wrapper is garbage collected, which is too late and too unreliable to report.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from rootserve.validate._errors import ContractError

__all__ = ["wsgi"]

_APP: Final = "WSGI"
_SERVER: Final = "WSGI server"

_DETAILS: Final = 'PEP 3333, "Specification Details"'
_START: Final = 'PEP 3333, "The start_response() Callable"'
_WRITE: Final = 'PEP 3333, "The write() Callable"'
_STREAMS: Final = 'PEP 3333, "Input and Error Streams"'
_ENVIRON: Final = 'PEP 3333, "environ Variables"'
_LENGTH: Final = 'PEP 3333, "Handling the Content-Length Header"'
_ERRORS: Final = 'PEP 3333, "Error Handling"'
_UNICODE: Final = 'PEP 3333, "Unicode Issues"'

_REQUIRED_KEYS: Final = (
    "REQUEST_METHOD",
    "SERVER_NAME",
    "SERVER_PORT",
    "wsgi.version",
    "wsgi.input",
    "wsgi.errors",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.run_once",
)
# CGI names that the request's own Content-Type and Content-Length do not take (PEP 3333
# "environ Variables": they are CONTENT_TYPE and CONTENT_LENGTH, without HTTP_).
_MISNAMED_KEYS: Final = ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH")
_INPUT_METHODS: Final = ("read", "readline", "readlines", "__iter__")
_ERRORS_METHODS: Final = ("write", "flush", "writelines")

# "999 Message here": three digits, one space, a reason phrase (PEP 3333 "The
# start_response() Callable"); control characters are refused anywhere in it.
_STATUS: Final = re.compile(r"[1-9][0-9]{2} [^\x00-\x1f\x7f]+")
# A field name is an RFC 9110 section 5.6.2 token.
_DECIMAL: Final = re.compile(r"[0-9]+")  # str.isdigit() would take "²", which int() refuses
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# PEP 3333 forbids control characters in header values; HTAB is kept, RFC 9110 section 5.5
# allows it inside a field value.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9110 section 7.6.1 and RFC 2616 section 13.5.1, the list wsgiref.util uses.
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


def _app_error(what: str, section: str) -> ContractError:
    return ContractError(_APP, what, section)


def _server_error(what: str, section: str) -> ContractError:
    return ContractError(_SERVER, what, section)


def wsgi(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """`app` wrapped so that every PEP 3333 rule it (or its server) breaks raises a
    ContractError. The wrapper takes exactly two positional arguments, so rootserve and
    other servers still detect it as WSGI."""

    def validated(environ: dict[str, Any], start_response: Any, /) -> Iterable[bytes]:
        _check_environ(environ)
        if not callable(start_response):
            raise _server_error("start_response is not callable", _DETAILS)
        environ["wsgi.errors"] = _Errors(environ["wsgi.errors"])
        call = _Call(start_response)
        result = app(environ, call.start_response)
        call.check_not_trapped(result)
        if isinstance(result, str):
            raise _app_error("the app returned a str, not an iterable of bytes", _UNICODE)
        if isinstance(result, (bytes, bytearray)):
            raise _app_error(
                f"the app returned a bare {type(result).__name__} (an iterable of ints), "
                "not an iterable of bytes such as [body]",
                _DETAILS,
            )
        wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type) and type(result) is wrapper:
            if call.headers is None:
                raise call.never_started()
            return result
        return _Body(result, call)

    # No __wrapped__: inspect.signature would follow it, and servers that detect WSGI by
    # signature must see this wrapper's two arguments.
    return validated


def _check_environ(environ: Any) -> None:
    """The server's side: what PEP 3333 "environ Variables" promises the app."""
    if type(environ) is not dict:
        raise _server_error(f"environ is a {type(environ).__name__}, not a dict", _DETAILS)
    for key in _REQUIRED_KEYS:
        if key not in environ:
            raise _server_error(f"environ lacks the required key {key!r}", _ENVIRON)
    for key in _MISNAMED_KEYS:
        if key in environ:
            raise _server_error(
                f"environ has {key!r}; the request's header belongs in {key[5:]!r}", _ENVIRON
            )
    for key, value in environ.items():
        # CGI variables (names without a dot) are native strings; wsgi.* and extensions
        # may be any type.
        if "." not in key and type(value) is not str:
            raise _server_error(
                f"environ[{key!r}] is a {type(value).__name__}, not a str", _ENVIRON
            )
    if environ["wsgi.version"] != (1, 0) or type(environ["wsgi.version"]) is not tuple:
        raise _server_error(
            f"environ['wsgi.version'] is {environ['wsgi.version']!r}, not (1, 0)", _ENVIRON
        )
    scheme = environ.get("wsgi.url_scheme")
    if scheme not in ("http", "https"):
        raise _server_error(
            f"environ['wsgi.url_scheme'] is {scheme!r}, not 'http' or 'https'", _ENVIRON
        )
    script_name = environ.get("SCRIPT_NAME", "")
    path_info = environ.get("PATH_INFO", "")
    for key, value in (("SCRIPT_NAME", script_name), ("PATH_INFO", path_info)):
        if value and not value.startswith("/"):
            raise _server_error(
                f"environ[{key!r}] is {value!r}, which lacks a leading '/'", _ENVIRON
            )
    if script_name == "/":
        raise _server_error(
            "environ['SCRIPT_NAME'] is '/'; an app at the root has SCRIPT_NAME ''", _ENVIRON
        )
    length = environ.get("CONTENT_LENGTH", "")
    if length and not _DECIMAL.fullmatch(length):
        raise _server_error(
            f"environ['CONTENT_LENGTH'] is {length!r}, not a decimal number", _ENVIRON
        )
    for key, methods in (("wsgi.input", _INPUT_METHODS), ("wsgi.errors", _ERRORS_METHODS)):
        missing = [name for name in methods if not hasattr(environ[key], name)]
        if missing:
            raise _server_error(
                f"environ[{key!r}] lacks {', '.join(name + '()' for name in missing)}", _STREAMS
            )


def _check_status(status: Any) -> None:
    if type(status) is not str:
        raise _app_error(f"the status is a {type(status).__name__}, not a str", _START)
    if not _STATUS.fullmatch(status) or status != status.strip():
        raise _app_error(
            f"the status {status!r} is not three digits, a space and a reason phrase", _START
        )


def _check_headers(headers: Any) -> int | None:
    """Raises on a broken header list; returns the declared Content-Length, if any."""
    if type(headers) is not list:
        raise _app_error(f"the headers are a {type(headers).__name__}, not a list", _START)
    length = None
    for item in headers:
        if type(item) is not tuple or len(item) != 2 or not all(type(p) is str for p in item):
            raise _app_error(f"the header {item!r} is not a (str, str) tuple", _START)
        name, value = item
        if not _TOKEN.fullmatch(name):
            raise _app_error(f"the header name {name!r} is not an HTTP token", _START)
        if _CONTROL.search(value):
            raise _app_error(
                f"the value of header {name!r} holds a control character: {value!r}", _START
            )
        lowered = name.lower()
        if lowered in _HOP_BY_HOP:
            raise _app_error(
                f"the app set the hop-by-hop header {name!r}; only the server may", _START
            )
        if lowered == "content-length" and _DECIMAL.fullmatch(value.strip()):
            length = int(value)
    return length


class _Call:
    """One call of the app: what it has told start_response and what it has sent."""

    __slots__ = ("declared", "headers", "reraised", "sent", "server_start", "server_write")

    def __init__(self, server_start: Callable[..., Any]) -> None:
        self.server_start = server_start
        self.server_write: Callable[[bytes], Any] | None = None
        self.headers: list[tuple[str, str]] | None = None
        self.declared: int | None = None  # the Content-Length the app set
        self.sent = 0  # body bytes passed on so far
        self.reraised = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is None:
            if self.headers is not None:
                raise _app_error("start_response() called a second time without exc_info", _START)
        elif type(exc_info) is not tuple or len(exc_info) != 3:
            raise _app_error(f"exc_info is {exc_info!r}, not a sys.exc_info() tuple", _START)
        elif self.sent:
            # The headers are gone: the server re-raises exc_info, and the app must let
            # that exception through (PEP 3333 "Error Handling").
            self.reraised = True
            self.server_start(status, headers, exc_info)
            raise _server_error(
                "start_response() with exc_info after the headers were sent did not re-raise",
                _START,
            )
        _check_status(status)
        declared = _check_headers(headers)
        self.server_write = self.server_start(status, headers, exc_info)
        self.headers, self.declared = headers, declared
        return self.write

    def write(self, data: bytes) -> None:
        # write() is only handed out by start_response(), so the server's is known here.
        assert self.server_write is not None
        if type(data) is not bytes:
            raise _app_error(f"write() given a {type(data).__name__}, not bytes", _WRITE)
        self.count(data)
        self.server_write(data)

    def count(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.headers is None:
            raise _app_error("body bytes came before start_response() was called", _START)
        self.sent += len(chunk)
        if self.declared is not None and self.sent > self.declared:
            raise _app_error(
                f"the body is longer than the Content-Length {self.declared} the app set "
                f"({self.sent} bytes so far)",
                _LENGTH,
            )

    def check_not_trapped(self, result: object) -> None:
        """After start_response() re-raised exc_info, the app may not go on normally."""
        if self.reraised:
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise _app_error(
                "the app went on normally after start_response() re-raised its exc_info; "
                "it must not trap that exception",
                _ERRORS,
            )

    def never_started(self) -> ContractError:
        return _app_error("the response ended without start_response() being called", _START)


class _Body:
    """The app's iterable as the server sees it: each chunk checked, close() forwarded."""

    __slots__ = ("call", "inner", "iterator")

    def __init__(self, inner: Iterable[Any], call: _Call) -> None:
        self.inner = inner
        self.call = call
        self.iterator: Iterator[Any] | None = None

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        if self.iterator is None:
            self.iterator = iter(self.inner)
        try:
            chunk = next(self.iterator)
        except StopIteration:
            self.call.check_not_trapped(None)
            if self.call.headers is None:
                raise self.call.never_started() from None
            raise
        self.call.check_not_trapped(None)
        if type(chunk) is not bytes:
            section = _UNICODE if isinstance(chunk, str) else _DETAILS
            raise _app_error(
                f"the body iterable yielded a {type(chunk).__name__}, not bytes", section
            )
        self.call.count(chunk)
        return chunk

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class _Errors:
    """wsgi.errors as the app sees it: text only (PEP 3333 "Input and Error Streams")."""

    __slots__ = ("inner",)

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def write(self, text: str) -> None:
        if type(text) is not str:
            raise _app_error(
                f"wsgi.errors.write() given a {type(text).__name__}, not a str", _STREAMS
            )
        self.inner.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.inner.flush()
