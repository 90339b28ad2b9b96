"""How `--trace` shows what it saw: snapshots of scopes, environs and messages, written as
text (Python-like literals, as the app sees them) or as JSON for tools.

How this works. The moment a message passes, `snapshot` copies it into plain values: bytes
become `Bytes` (the length and the first bytes), long text becomes `Text`, header lists
become `HeaderLines`, objects the trace cannot show become `Other` (a short repr). A copy,
because an app may change a dict after sending it (frameworks add keys to the scope), and
bounded, because a body may be megabytes. `render_text` and `render_json` then write a
block's events; rendering waits until the block is written, off the app's path.

Every value a client controls is escaped: bytes and text are written as Python's repr()
writes them (no control character passes), header fields with their control characters
as escapes, JSON by construction; so no request can forge a trace line or colour a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from rootserve.observe.access import printable

__all__ = [
    "Bytes",
    "Event",
    "HeaderLines",
    "Other",
    "Text",
    "header_lines",
    "outcome",
    "render_json",
    "render_text",
    "snapshot",
]

PREVIEW: Final = 40  # bytes or characters of a body shown
_TEXT_MAX: Final = 120  # longer text is cut
_ITEMS_MAX: Final = 24  # items of a list or dict shown
_DEPTH_MAX: Final = 3
# Keys whose bytes are a body: shown with their length always.
_AS_IS: Final = frozenset({type(None), bool, int, float})  # copied as they are
_BODY_KEYS: Final = frozenset({"body", "bytes", "data", "text"})


@dataclass(frozen=True, slots=True)
class Bytes:
    size: int
    head: bytes
    counted: bool  # a body: its length is shown even when it is shown whole


@dataclass(frozen=True, slots=True)
class Text:
    size: int
    head: str
    counted: bool


@dataclass(frozen=True, slots=True)
class HeaderLines:
    lines: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Other:
    text: str


@dataclass(slots=True)
class Event:
    """One step of a conversation: when (ms since the block opened), what, and its values."""

    ms: float
    kind: str  # scope, receive, send, environ, start_response, write, yield, read, ...
    value: Any  # a snapshot
    nested: bool = False  # a WSGI app's step inside an ASGI conversation (WSGIMount)
    note: str = ""  # words after the value: "returned None", "raised ...", "(exc_info)"


def header_lines(headers: Iterable[Any]) -> HeaderLines | Other:
    """Header pairs of bytes (ASGI) or str (WSGI), decoded for display."""
    lines: list[tuple[str, str]] = []
    try:
        for name, value in headers:
            lines.append((_shown(name), _shown(value)))
    except (TypeError, ValueError):
        return Other(_short(repr(headers)))  # not pairs: shown as the app gave it
    return HeaderLines(tuple(lines))


def _shown(part: Any) -> str:
    if isinstance(part, bytes | bytearray):
        part = bytes(part).decode("latin-1")  # as RFC 9110 section 5.5 lets a field be read
    return printable(str(part))


def snapshot(value: Any, key: str = "", depth: int = 0) -> Any:
    """A bounded copy of `value` that the renderers can write (see the module docstring)."""
    # By exact type first: a scope is a dozen values, mostly of these, and an isinstance
    # chain for each cost about half of all tracing (cProfile of a traced GET).
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is bytes or isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value[:PREVIEW]) if len(value) > PREVIEW else bytes(value)
        return Bytes(len(value), data, key in _BODY_KEYS)
    if kind is str or isinstance(value, str):
        limit = PREVIEW if key in _BODY_KEYS else _TEXT_MAX
        return Text(len(value), value[:limit], key in _BODY_KEYS)  # repr() escapes it
    if key == "headers" and isinstance(value, list | tuple):
        return header_lines(value)
    if depth >= _DEPTH_MAX:
        return Other(_short(repr(value)))
    if kind is dict or isinstance(value, Mapping):
        items = list(value.items())[:_ITEMS_MAX]
        return {str(k): snapshot(v, str(k), depth + 1) for k, v in items}
    if isinstance(value, list | tuple):
        copied = [snapshot(item, "", depth + 1) for item in value[:_ITEMS_MAX]]
        return tuple(copied) if isinstance(value, tuple) else copied
    return Other(_short(repr(value)))


def _short(text: str) -> str:
    text = printable(text)
    return text if len(text) <= _TEXT_MAX else text[:_TEXT_MAX] + "…"


def outcome(exc: BaseException) -> str:
    """An exception as a trace shows it: its type, and its message escaped."""
    return f"{type(exc).__name__}: {printable(str(exc))}" if str(exc) else type(exc).__name__


# -- text ----------------------------------------------------------------------------------

_RESET: Final = "\x1b[0m"
_STYLES: Final = {
    "head": "\x1b[1m",
    "time": "\x1b[2m",
    "in": "\x1b[36m",  # what the server hands the app
    "out": "\x1b[32m",  # what the app hands the server
    "context": "\x1b[34m",  # scope, environ
    "end": "\x1b[35m",
    "error": "\x1b[31m",
}
# What each kind of step is labelled, and its colour.
_LABELS: Final = {
    "scope": ("scope", "context"),
    "environ": ("environ", "context"),
    "receive": ("receive() ->", "in"),
    "send": ("send()", "out"),
    "start_response": ("start_response()", "out"),
    "write": ("write()", "out"),
    "returned": ("app returned", "end"),
    "yield": ("body iterable gave", "out"),
    "read": ("wsgi.input", "in"),
    "close": ("close()", "end"),
    "raised": ("raised", "error"),
}
_INDENT: Final = " " * 14  # under the label column
_WIDTH: Final = 100


def literal(value: Any) -> str:
    """`value` as a Python-like literal (what the app sees), bodies cut with their length."""
    if isinstance(value, Bytes):
        shown = repr(value.head)  # bytes' repr escapes every byte a terminal would act on
        if value.size > len(value.head):
            return f"{shown}… ({value.size} bytes)"
        return f"{shown} ({value.size} bytes)" if value.counted else shown
    if isinstance(value, Text):
        shown = repr(value.head)
        if value.size > len(value.head):
            return f"{shown}… ({value.size} chars)"
        return f"{shown} ({value.size} chars)" if value.counted else shown
    if isinstance(value, HeaderLines):
        return f"[{len(value.lines)} headers]"
    if isinstance(value, Other):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return repr(value)


def _fields(value: Any) -> tuple[list[str], list[tuple[str, str]]]:
    """A snapshot dict as `key=value` words, its header lists apart (one line per header)."""
    words: list[str] = []
    headers: list[tuple[str, str]] = []
    if not isinstance(value, dict):
        return [literal(value)], headers
    for key, item in value.items():
        if isinstance(item, HeaderLines):
            headers.extend(item.lines)
            words.append(f"{key}=[{len(item.lines)}]")
        else:
            words.append(f"{key}={literal(item)}")
    return words, headers


def _wrap(words: list[str], first: int) -> list[str]:
    """Words in lines of about _WIDTH columns, the first line starting at column `first`."""
    lines: list[str] = []
    line = ""
    width = _WIDTH - first
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line, width = word, _WIDTH - len(_INDENT)
        else:
            line = f"{line} {word}" if line else word
    if line or not lines:
        lines.append(line)
    return lines


def render_text(head: str, events: list[Event], colour: bool) -> str:
    """A block: its head line, then one line (or a few) per event."""

    def paint(text: str, style: str) -> str:
        return f"{_STYLES[style]}{text}{_RESET}" if colour else text

    out = [paint(f"── {head}", "head")]
    for event in events:
        label, style = _LABELS.get(event.kind, (event.kind, "end"))
        note = event.note
        if event.kind == "read":  # wsgi.input.read(100) -> b'...'
            label, note = f"wsgi.input.{note} ->", ""
        if event.nested:
            label = f"wsgi {label}"
        time = paint(f"{event.ms:9.3f} ms", "time")
        words, headers = _fields(event.value) if event.value is not None else ([], [])
        if note:
            words.append(note)
        start = f"{time}  {paint(label, style)}"
        lines = _wrap(words, len(f"{event.ms:9.3f} ms  {label}  "))
        out.append(f"{start}  {lines[0]}".rstrip())
        out.extend(_INDENT + line for line in lines[1:])
        out.extend(f"{_INDENT}  {name}: {value}" for name, value in headers)
    return "\n".join(out)


# -- JSON ----------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A snapshot as JSON values: bytes as {"bytes": length, "preview": text}, the preview
    UTF-8 with other bytes as `\\xHH` (json.dumps escapes the rest)."""
    if isinstance(value, Bytes):
        return {"bytes": value.size, "preview": value.head.decode("utf-8", "backslashreplace")}
    if isinstance(value, Text):
        return (
            value.head
            if value.size == len(value.head)
            else {"chars": value.size, "preview": value.head}
        )
    if isinstance(value, HeaderLines):
        return [list(pair) for pair in value.lines]
    if isinstance(value, Other):
        return {"repr": value.text}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def render_json(fields: dict[str, Any], events: list[Event]) -> str:
    """A block as one JSON object: its fields and its events in order."""
    steps = []
    for event in events:
        step: dict[str, Any] = {"ms": round(event.ms, 3), "event": event.kind}
        if event.nested:
            step["contract"] = "wsgi"
        if event.value is not None:
            step["value"] = plain(event.value)
        if event.note:
            step["note"] = event.note
        steps.append(step)
    # ensure_ascii: nothing a client sent can end the line or pass as another one.
    return json.dumps({**fields, "events": steps})
