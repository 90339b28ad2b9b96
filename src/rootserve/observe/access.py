"""The access log: one line per answered request, or a null object that costs nothing.

How this works. `AccessLog` reads the logging settings once. --access-log-format is compiled
into a %-template and one function per placeholder (`compile_format`), so a line costs a
call per placeholder and one `%`. --access-log-exclude becomes a set of exact paths and a
tuple of prefixes, tested before anything else: an excluded request costs a set lookup and
a `startswith`. With --log-format json a line is one JSON object instead, which
`JSONFormatter` (logs.py) writes as it is.

A line reads the request's exchange (`Answered`): the request head, with what
server/exchange.py keeps as the answer goes out (the status, the app's response headers,
the body bytes handed over) and `started`, the clock read when the request arrived. Only
this log needs that clock, so only it reads it: `AccessLog.timed` wraps the runner, whose
`attach` is called as each request arrives, when a line shows a duration; otherwise, and
with the log off (`NullAccessLog`), the runner stays as it is and no request reads a clock.

Every value a client controls is escaped. In a text line each byte outside printable ASCII,
and the `"` and `\\` that delimit fields, becomes `\\xHH` (as nginx writes them): a client
can neither end a line, forge another, colour a terminal nor break out of a quoted field.
JSON escapes by construction, and `ensure_ascii` lets no Unicode line separator through.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, NamedTuple, Protocol, TypeVar

from rootserve.config import Config, ConfigError
from rootserve.config_edge import COMMON_LOG_FORMAT
from rootserve.observe.ids import PROCESS, header_value, request_id, trace_id
from rootserve.observe.logs import JSON_LINE, clf_time, iso_time
from rootserve.protocol.events import Head
from rootserve.protocol.rules import TOKEN

__all__ = [
    "AccessLog",
    "Answered",
    "NullAccessLog",
    "body_bytes",
    "check_access_log",
    "escape",
    "printable",
    "timed_runner",
]

logger = logging.getLogger("rootserve.access")

_R = TypeVar("_R")


def printable(text: str) -> str:
    """`text` with control characters escaped, so a client cannot forge log lines."""
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


# What a text line writes as it is: printable ASCII but `"` and `\`.
_UNSAFE: Final = re.compile(rb"[^ !#-\[\]-~]")


def _hex(match: re.Match[bytes]) -> bytes:
    return b"\\x%02x" % match[0][0]


def escape(data: bytes) -> str:
    """`data` for a text line: each byte outside printable ASCII, and `"` and `\\`, as
    `\\xHH`."""
    if _UNSAFE.search(data) is None:
        return data.decode("ascii")
    return _UNSAFE.sub(_hex, data).decode("ascii")


def _text(data: bytes) -> str:
    """`data` for a JSON line: UTF-8, other bytes as `\\xHH` (JSON escapes the rest)."""
    return data.decode("utf-8", "backslashreplace")


# -- request and trace ids ------------------------------------------------------------------

# -- a finished request, as placeholders read it ------------------------------------------


class Answered(Head, Protocol):
    """What a line reads of a finished exchange (server/exchange.py keeps it), besides the
    optional `started` (a `time.perf_counter()` value, set by `AccessLog.timed`)."""

    response_headers: Iterable[tuple[bytes, bytes]]  # as the app gave them
    sent: int  # body bytes the app handed over


def body_bytes(request: Answered, status: int) -> int:
    """Body bytes sent: none for HEAD, 204 and 304, whatever the app gave (RFC 9110
    section 6.4.1; the protocol dropped them, protocol/_send.py)."""
    if status == 204 or status == 304 or request.method == "HEAD":
        return 0
    return request.sent


class _Line(NamedTuple):
    client: tuple[str, int] | None
    request: Answered
    status: int
    seconds: float | None  # since the request arrived; None when not timed


Field = Callable[[_Line], str]


def _micros(line: _Line) -> str:
    return "-" if line.seconds is None else str(int(line.seconds * 1_000_000))


def _seconds(line: _Line) -> str:
    return "-" if line.seconds is None else f"{line.seconds:.6f}"


def _bytes_or_dash(line: _Line) -> str:
    return str(body_bytes(line.request, line.status) or "-")


# The method and version need no escape: the protocol took only a token and 1.0 or 1.1.
_FIELDS: Final[dict[str, Field]] = {
    "h": lambda line: line.client[0] if line.client else "-",
    "t": lambda line: clf_time(time.time()),
    "r": lambda line: (
        f"{line.request.method} {escape(line.request.target)} HTTP/{line.request.http_version}"
    ),
    "m": lambda line: line.request.method,
    "U": lambda line: escape(line.request.path),
    "q": lambda line: escape(line.request.query),
    "H": lambda line: f"HTTP/{line.request.http_version}",
    "s": lambda line: str(line.status),
    "b": _bytes_or_dash,
    "B": lambda line: str(body_bytes(line.request, line.status)),
    "D": _micros,
    "L": _seconds,
    "p": lambda line: str(PROCESS.pid),
    "i": lambda line: request_id(line.request.headers),
}
_TIMED_FIELDS: Final = frozenset({"D", "L"})


def _header_field(name: bytes, response: bool) -> Field:
    def field(line: _Line) -> str:
        request = line.request
        value = header_value(request.response_headers if response else request.headers, name)
        return "-" if value is None else escape(value)

    return field


# `%(name)s`, `%%`, or a `%` that is neither (group `bad`).
_DIRECTIVE: Final = re.compile(r"%(?:\((?P<name>[^()]*)\)(?P<conv>s?)|(?P<percent>%)|(?P<bad>))")
_HEADER_FIELD: Final = re.compile(r"\{([^{}]*)\}([io])")
_KNOWN: Final = ", ".join(f"%({name})s" for name in _FIELDS) + ", %({header}i)s, %({header}o)s"


def compile_format(text: str) -> tuple[str, list[Field], set[str]]:
    """--access-log-format as a %-template with a `%s` per placeholder, the function that
    gives each one's value, and the placeholders used. An unknown or malformed placeholder
    is a `ConfigError` that names it."""
    where = "--access-log-format"
    template: list[str] = []
    fields: list[Field] = []
    used: set[str] = set()
    pos = 0
    for match in _DIRECTIVE.finditer(text):
        template.append(text[pos : match.start()])
        pos = match.end()
        name = match["name"]
        if match["percent"]:
            template.append("%%")
            continue
        if name is None:
            raise ConfigError(
                f"{where}: a lone % at character {match.start() + 1}; write %% for a percent "
                "sign, %(name)s for a placeholder"
            )
        if not match["conv"]:
            raise ConfigError(f"{where}: %({name}) must end in )s, as in %({name})s")
        header = _HEADER_FIELD.fullmatch(name)
        if name in _FIELDS:
            fields.append(_FIELDS[name])
        elif header is not None and TOKEN.fullmatch(header[1].encode("latin-1", "replace")):
            lowered = header[1].lower().encode("ascii")
            fields.append(_header_field(lowered, response=header[2] == "o"))
        else:
            raise ConfigError(f"{where}: unknown placeholder %({name})s; known: {_KNOWN}")
        template.append("%s")
        used.add(name)
    template.append(text[pos:])
    return "".join(template), fields, used


def _excludes(patterns: Iterable[str]) -> tuple[frozenset[bytes], tuple[bytes, ...]]:
    """--access-log-exclude as exact paths and prefixes (a pattern ending in `*`)."""
    exact: set[bytes] = set()
    prefixes: list[bytes] = []
    for pattern in patterns:
        where = f"--access-log-exclude {pattern!r}"
        if "*" in pattern[:-1]:
            raise ConfigError(f"{where}: only a trailing * is a wildcard (as in /static/*)")
        if not pattern.startswith(("/", "*")):
            raise ConfigError(f"{where}: a path starts with / (as in /healthz)")
        raw = pattern.encode("utf-8")  # matched against the path as sent: percent-encoded
        if raw.endswith(b"*"):
            prefixes.append(raw[:-1])
        else:
            exact.add(raw)
    return frozenset(exact), tuple(prefixes)


# -- the logs -----------------------------------------------------------------------------


class _Runner(Protocol):
    """What `timed` wraps: server/state.py's Runner."""

    def attach(self, exchange: Any) -> None: ...

    def start(self, exchange: Any) -> None: ...

    async def aclose(self) -> None: ...


class _Timed:
    """A runner that notes when each request arrived, for the line's duration."""

    def __init__(self, runner: _Runner) -> None:
        self.runner = runner
        self.start = runner.start  # called for every request: no frame of ours around it

    def attach(self, exchange: Any) -> None:
        exchange.started = time.perf_counter()
        self.runner.attach(exchange)

    async def aclose(self) -> None:
        await self.runner.aclose()


def timed_runner(runner: _Runner) -> _Runner:
    """`runner`, made to note each request's arrival (`exchange.started`)."""
    return _Timed(runner)


_JSON_EXTRA: Final = {JSON_LINE: True}


class NullAccessLog:
    """Access log off."""

    def log(self, client: tuple[str, int] | None, request: Answered, status: int) -> None:
        return None

    def timed(self, runner: _R) -> _R:
        return runner


class AccessLog:
    """One line per answered request: --access-log-format (the common log format by
    default), or one JSON object (`as_json`); none for an --access-log-exclude path."""

    def __init__(
        self,
        line_format: str = COMMON_LOG_FORMAT,
        *,
        as_json: bool = False,
        exclude: Iterable[str] = (),
    ) -> None:
        # Checked in JSON mode too: a setting that cannot work is an error either way.
        template, fields, used = compile_format(line_format)
        self._template = template
        self._fields = tuple(fields)
        self._json = as_json
        self._exact, self._prefixes = _excludes(exclude)
        self._timed = as_json or not used.isdisjoint(_TIMED_FIELDS)

    @classmethod
    def from_config(cls, config: Config) -> AccessLog:
        return cls(
            config.access_log_format,
            as_json=config.log_format == "json",
            exclude=config.access_log_exclude,
        )

    def timed(self, runner: _Runner) -> _Runner:
        """`runner`, made to note each request's arrival when a line shows a duration."""
        return timed_runner(runner) if self._timed else runner

    def log(self, client: tuple[str, int] | None, request: Answered, status: int) -> None:
        """Log the request `request`, answered with `status`, from `client`."""
        path = request.path
        if path in self._exact or path.startswith(self._prefixes):
            return
        if not logger.isEnabledFor(logging.INFO):
            return
        started: float | None = getattr(request, "started", None)
        seconds = None if started is None else time.perf_counter() - started
        if self._json:
            _emit(_json_line(client, request, status, seconds), _JSON_EXTRA)
            return
        line = _Line(client, request, status, seconds)
        _emit(self._template % tuple([field(line) for field in self._fields]))


def _emit(message: str, extra: dict[str, bool] | None = None) -> None:
    # `logger.info`, less its walk up the stack for the caller's file and line (measured: a
    # sixth of a line's cost), which for an access line is always here.
    record = logger.makeRecord(
        logger.name, logging.INFO, __file__, 0, message, (), None, extra=extra
    )
    logger.handle(record)


def _json_line(
    client: tuple[str, int] | None, request: Answered, status: int, seconds: float | None
) -> str:
    headers = request.headers
    fields: dict[str, Any] = {
        "time": iso_time(time.time()),
        "level": "info",
        "logger": "rootserve.access",
        "pid": PROCESS.pid,
        "request_id": request_id(headers),
    }
    trace = trace_id(headers)
    if trace is not None:
        fields["trace_id"] = trace
    fields |= {
        "method": request.method,
        "path": _text(request.path),
        "query": _text(request.query),
        "http_version": request.http_version,
        "status": status,
        "bytes": body_bytes(request, status),
        "duration_ms": None if seconds is None else round(seconds * 1000, 3),
        "client": client[0] if client else None,
        "client_port": client[1] if client else None,
    }
    agent = header_value(headers, b"user-agent")
    if agent is not None:
        fields["user_agent"] = _text(agent)
    return json.dumps(fields)  # ensure_ascii: escaped by construction


def check_access_log(config: Config) -> None:
    """Raise a one-line `ConfigError` for an --access-log-format or --access-log-exclude
    that cannot work: for the CLI to call before anything starts."""
    AccessLog.from_config(config)
