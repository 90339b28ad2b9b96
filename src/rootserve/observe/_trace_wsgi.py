"""--trace for WSGI: one call of the app recorded into a block (observe/trace.py says how
tracing works): the environ, what the app reads from `wsgi.input`, `start_response`, each
`write()`, each chunk the server takes from the body iterable, and `close()`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from rootserve.observe._trace_render import header_lines, outcome, snapshot
from rootserve.types import WSGIApp, WSGIEnviron

if TYPE_CHECKING:
    from rootserve.observe.trace import Block

__all__ = ["environ_snapshot", "traced_wsgi_call"]

# The environ keys a WSGI block shows in its first line; HTTP_* come as header lines.
_ENVIRON_KEYS: Final = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "wsgi.version",
    "wsgi.url_scheme",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.run_once",
    "wsgi.input_terminated",
)


def traced_wsgi_call(
    app: WSGIApp,
    environ: WSGIEnviron,
    start_response: Callable[..., Any],
    block: Block,
    *,
    nested: bool,
) -> Any:
    """Call `app`, recording its side of PEP 3333 into `block`. `nested`: the call is part
    of an ASGI conversation (a WSGIMount), whose block the ASGI side closes."""

    def add(kind: str, value: Any = None, note: str = "") -> None:
        block.add(kind, value, note=note, nested=nested)

    if nested:  # (a block of its own was opened with the environ)
        add("environ", environ_snapshot(environ))
    stream = environ.get("wsgi.input")
    if stream is not None:
        environ["wsgi.input"] = _TracedInput(stream, add)

    def traced_start(status: Any, headers: Any, exc_info: Any = None) -> Callable[[bytes], Any]:
        note = f"exc_info={outcome(exc_info[1])}" if exc_info else ""
        add("start_response", {"status": snapshot(status), "headers": header_lines(headers)}, note)
        write = (
            start_response(status, headers, exc_info)
            if exc_info
            else start_response(status, headers)
        )

        def traced_write(data: bytes) -> Any:
            add("write", snapshot(data, "data"))
            return write(data)

        return traced_write

    def end(kind: str, note: str) -> None:
        if nested:
            add(kind, note=note)
        else:
            block.close(kind, note)

    try:
        result = app(environ, traced_start)
    except BaseException as exc:
        end("raised", outcome(exc))
        raise
    wrapper = environ.get("wsgi.file_wrapper")
    if isinstance(wrapper, type) and type(result) is wrapper:
        # Left as it is, so that the server still sends the file from the kernel.
        end("returned", f"wsgi.file_wrapper({type(getattr(result, 'filelike', None)).__name__})")
        return result
    add("returned", note=_describe_iterable(result))
    return _TracedBody(result, add, end)


def _describe_iterable(result: Any) -> str:
    if isinstance(result, list | tuple):
        return f"a {type(result).__name__} of {len(result)}"
    return f"a {type(result).__name__}"


def environ_snapshot(environ: WSGIEnviron) -> dict[str, Any]:
    shown: dict[str, Any] = {key: snapshot(environ[key]) for key in _ENVIRON_KEYS if key in environ}
    headers = [(k, v) for k, v in environ.items() if k.startswith("HTTP_")]
    shown["headers"] = header_lines(headers)
    others = sorted(k for k in environ if k not in shown and not k.startswith("HTTP_"))
    shown["also"] = snapshot(others)
    return shown


class _TracedBody:
    """The app's body iterable: each chunk the server takes, and close(), recorded."""

    def __init__(
        self, result: Any, add: Callable[..., None], end: Callable[[str, str], None]
    ) -> None:
        self.result = result
        self.add = add
        self.end = end
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.result:
                self.add("yield", snapshot(chunk, "data"))
                yield chunk
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):
                self.add("raised", note=outcome(exc))
            raise

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        close = getattr(self.result, "close", None)
        try:
            if close is not None:
                close()
        except BaseException as exc:
            self.end("close", f"raised {outcome(exc)}")
            raise
        self.end("close", "" if close is not None else "(the iterable has none)")


class _TracedInput:
    """`wsgi.input`, its reads recorded (what the app took of the request body)."""

    def __init__(self, stream: Any, add: Callable[..., None]) -> None:
        self._stream = stream
        self._add = add

    def _read(self, name: str, size: int | None, data: bytes) -> bytes:
        arg = "" if size is None or size == -1 else repr(size)
        self._add("read", snapshot(data, "data"), note=f"{name}({arg})")
        return data

    def read(self, size: int | None = -1) -> bytes:
        return self._read(
            "read", size, self._stream.read(size) if size is not None else self._stream.read()
        )

    def readline(self, size: int | None = -1) -> bytes:
        return self._read(
            "readline",
            size,
            self._stream.readline(size) if size is not None else self._stream.readline(),
        )

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = (
            self._stream.readlines(hint) if hint is not None else self._stream.readlines()
        )
        self._add("read", snapshot(b"".join(lines), "data"), note="readlines()")
        return lines

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            self._add("read", snapshot(line, "data"), note="__next__()")
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
