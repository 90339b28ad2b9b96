"""Static files: `--static /prefix=DIR` answered by the server itself, before the app.

How this works. `StaticRunner` wraps the app's runner (ASGI, WSGI or WebSocket) and is a
`Runner` itself. Its `attach` makes one test per request, `path.startswith(starts)` with
every mount's `PREFIX/` in one tuple; a request under no mount goes on to the wrapped runner.
One under a mount gets a `StaticAnswer` as its exchange's receiver, which at its turn
(`start`) resolves the path to a regular file under DIR (`resolve`, the rules are in
docs/static-files.md), weighs the conditional fields and the Range (`plan`) and answers
through the exchange as an app would: HEAD, keep-alive, the access log and completion work
as for an app's answer, and the app is never called.

Opening and reading. The file is opened and sized on the loop: a few system calls on
metadata the kernel has cached, where a hop to a thread would cost more than the whole
answer of a small file (DESIGN.md: a hand-off costs about 30 us). O_NONBLOCK: a FIFO cannot
hang the loop; O_NOFOLLOW: the name `realpath` checked is not swapped for a symlink. A body
up to WHOLE_MAX is read at once and leaves with its head; a larger one goes out with the
exchange's `send_file` (the kernel's sendfile) where the loop has it, else in READ_BLOCK
reads on the loop's default executor, each sent, and drained while the socket is full,
before the next. The file is closed on every path, a client gone mid-file included.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import logging
import mimetypes
import os
import re
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import formatdate, parsedate_tz
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from rootserve.observe.access import printable
from rootserve.protocol.events import Headers
from rootserve.protocol.exchange import ClientDisconnected, Exchange, ResponseError
from rootserve.protocol.rules import phrase
from rootserve.server.state import Runner
from rootserve.units import KIB

__all__ = ["Mount", "NotServed", "StaticRunner", "byte_range", "parse_static", "resolve"]

logger = logging.getLogger("rootserve.error")

WHOLE_MAX: Final = 64 * KIB  # a body this small is read at once and sent with its head
READ_BLOCK: Final = 256 * KIB  # one read of a larger body, where there is no sendfile
TASK_NAME: Final = "rootserve.static"
INDEX: Final = b"index.html"  # served for a path that ends in "/"
_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY  # see the top
_PREFIX: Final = re.compile(r"(/[A-Za-z0-9._~-]+)*/?")  # unreserved characters only
_BAD_ESCAPE: Final = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_REFUSED_BYTES: Final = re.compile(rb"[\x00-\x1f\x7f\\]")  # NUL, controls, backslash: 400
_ETAG: Final = re.compile(rb'(W/)?("[^"]*")')
_RANGE: Final = re.compile(rb"(\d{0,18})-(\d{0,18})")  # longer: ignored, the whole file
# Python 3.11's table lacks or dates these (RFC 9239 for JavaScript, RFC 8081 for fonts).
_MORE_TYPES: Final = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}
_TEXT_PLAIN: Final = (b"content-type", b"text/plain; charset=utf-8")
_OCTETS: Final = b"application/octet-stream"  # an unknown extension


class NotServed(Exception):
    """The request gets this small error answer instead of a file."""

    def __init__(self, status: int, headers: Headers | None = None) -> None:
        self.status, self.headers = status, headers or []


@dataclass(frozen=True, slots=True)
class Mount:
    """One `--static` value: paths starting with `start` are files under `root`."""

    start: bytes  # the prefix and a slash: b"/static/" (b"/" for the prefix "/")
    root: str  # DIR as a real path, ending in the separator


def parse_static(items: Iterable[str]) -> tuple[Mount, ...]:
    """The `--static` values as mounts, longest prefix first (it wins where two nest).
    A bad value raises ValueError with one line naming it and the fix."""
    mounts: dict[bytes, Mount] = {}
    for item in items:
        prefix, equals, folder = (part.strip() for part in item.partition("="))
        if not equals or not prefix.startswith("/") or not folder:
            raise ValueError(f"--static {item!r}: write it as /PREFIX=DIR, e.g. /static=./public")
        if _PREFIX.fullmatch(prefix) is None:
            raise ValueError(
                f"--static {item!r}: use only letters, digits, - . _ ~ and / in a prefix"
            )
        root = os.path.realpath(folder)
        if not os.path.isdir(root):
            raise ValueError(f"--static {item!r}: {folder!r} is not an existing folder")
        start = prefix.rstrip("/").encode("ascii") + b"/"
        if start in mounts:
            raise ValueError(f"--static {item!r}: the prefix {prefix!r} is given twice")
        mounts[start] = Mount(start, os.path.join(root, ""))
    return tuple(sorted(mounts.values(), key=lambda mount: -len(mount.start)))


def resolve(mount: Mount, rest: bytes) -> str:
    """The real path of the file that `rest`, the raw path after the mount's `PREFIX/`,
    names; else NotServed. Each segment is percent-decoded once: a bad escape, a byte that is
    not UTF-8, a NUL or other control, a backslash is 400; an empty segment, one that starts
    with "." (`..`, `.git`) or holds an encoded "/" or a ":" (a drive letter) is 404, and so
    is a path whose symlinks lead out of the folder or to a dotfile. A path ending in "/"
    names its folder's index.html."""
    if not rest or rest.endswith(b"/"):
        rest += INDEX
    if b"%" in rest and _BAD_ESCAPE.search(rest):
        raise NotServed(400)
    parts = []
    for raw in rest.split(b"/"):
        part = unquote_to_bytes(raw) if b"%" in raw else raw  # decoded once, never again
        if _REFUSED_BYTES.search(part):
            raise NotServed(400)
        if not part or part.startswith(b".") or b"/" in part or b":" in part:
            raise NotServed(404)
        parts.append(part)
    try:
        relative = b"/".join(parts).decode("utf-8")
    except UnicodeDecodeError:
        raise NotServed(400) from None
    real = os.path.realpath(mount.root + relative)
    # Symlinks resolved: the file must still be inside the folder, and no dotfile.
    if not real.startswith(mount.root) or "/." in real[len(mount.root) - 1 :]:
        raise NotServed(404)
    return real


def byte_range(value: bytes, size: int) -> tuple[int, int] | None:
    """The first and last byte of the one range `value` asks for (RFC 9110 section 14.1.2),
    or None to send the whole file: a unit other than bytes, a malformed or an invalid
    range is ignored (section 14.2), and so are several ranges, which would need a
    multipart/byteranges body. No byte of the file in range raises NotServed(416)."""
    unit, _, spec = value.partition(b"=")
    match = _RANGE.fullmatch(spec.strip())
    if unit.strip().lower() != b"bytes" or match is None or not (match[1] or match[2]):
        return None
    unsatisfiable = NotServed(416, [(b"content-range", b"bytes */%d" % size)])
    if match[1]:
        first, last = int(match[1]), int(match[2] or size - 1)
        if last < first and match[2]:
            return None
        if first >= size:
            raise unsatisfiable
        return first, min(last, size - 1)
    suffix = int(match[2])
    if suffix == 0 or size == 0:
        raise unsatisfiable
    return max(0, size - suffix), size - 1


def _http_date(value: bytes | None) -> int | None:
    """Seconds since the epoch for an HTTP-date in any of its three forms (RFC 9110
    section 5.6.7); None for a missing or invalid one, which the field's rule ignores."""
    parsed = parsedate_tz(value.decode("latin-1")) if value is not None else None
    try:
        return None if parsed is None else calendar.timegm(parsed[:6]) - (parsed[9] or 0)
    except (ValueError, OverflowError):  # a year out of range
        return None


def _etag_listed(value: bytes, etag: bytes, *, weak: bool) -> bool:
    """Whether the entity-tag list `value` holds `etag`: by weak comparison (W/ ignored),
    or strong (a W/ tag never matches), RFC 9110 section 8.8.3.2."""
    if value.strip() == b"*":
        return True
    return any(m[2] == etag and (weak or not m[1]) for m in _ETAG.finditer(value))


# The request fields a file's answer depends on (RFC 9110 sections 13.1 and 14.2).
_CONDITIONS: Final = frozenset(
    (b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since", b"range")
) | {b"if-range"}


def preconditions(fields: dict[bytes, bytes], etag: bytes, modified: int) -> int:
    """RFC 9110 section 13.2.2, for a GET or HEAD of a file that exists: 412, 304, or 0
    to answer normally. If-Match wins over If-Unmodified-Since, and If-None-Match over
    If-Modified-Since; an invalid date, or one in the future, is ignored."""
    if_match = fields.get(b"if-match")
    if if_match is not None:
        if not _etag_listed(if_match, etag, weak=False):
            return 412
    else:
        date = _http_date(fields.get(b"if-unmodified-since"))
        if date is not None and modified > date:
            return 412
    if_none_match = fields.get(b"if-none-match")
    if if_none_match is not None:
        return 304 if _etag_listed(if_none_match, etag, weak=True) else 0
    date = _http_date(fields.get(b"if-modified-since"))
    return 304 if date is not None and modified <= date <= time.time() else 0


def plan(
    fields: dict[bytes, bytes], method: str, size: int, etag: bytes, modified: int
) -> tuple[int, int, int]:
    """The answer's status, first byte and length for a file of `size` bytes; raises
    NotServed for 412 and 416. A Range is for GET only (RFC 9110 section 14.2), and with
    If-Range only while the file is the one the client has a part of: the same strong
    ETag, or exactly its Last-Modified date (section 13.1.5)."""
    verdict = preconditions(fields, etag, modified)
    if verdict == 304:
        return 304, 0, 0
    if verdict:
        raise NotServed(verdict)
    asked = fields.get(b"range")
    if asked is None or method != "GET":
        return 200, 0, size
    if_range = fields.get(b"if-range", b"").strip()
    if if_range.startswith((b'"', b"W/")):
        holds = if_range == etag
    else:
        holds = not if_range or _http_date(if_range) == modified
    span = byte_range(asked, size) if holds else None
    return (200, 0, size) if span is None else (206, span[0], span[1] - span[0] + 1)


def content_types() -> dict[str, bytes]:
    """Content-Type by lower-case extension: Python's own table (not the machine's
    mime.types: the same answer everywhere), a few updates, charset=utf-8 on text."""
    table = mimetypes.MimeTypes()
    types = {**table.types_map[False], **table.types_map[True], **_MORE_TYPES}
    return {
        ext: (kind + "; charset=utf-8" if kind.startswith("text/") else kind).encode("ascii")
        for ext, kind in types.items()
    }


class StaticRunner:
    """A Runner that answers the requests under its mounts from files and hands every
    other request to `runner` (see the module's docstring)."""

    def __init__(
        self, runner: Runner, mounts: Sequence[Mount], *, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.runner = runner
        self.mounts = tuple(mounts)
        self.loop = loop
        self.types = content_types()
        self._starts = tuple(mount.start for mount in self.mounts)

    def attach(self, exchange: Exchange) -> None:
        if exchange.path.startswith(self._starts):
            exchange.receiver = StaticAnswer(exchange, self)
        else:
            self.runner.attach(exchange)

    def start(self, exchange: Exchange) -> None:
        answer = exchange.receiver
        if type(answer) is StaticAnswer:
            # From the loop's ready queue, as an app's task would: an answer made inside
            # this call would start the next pipelined request from within it, one stack
            # frame deeper per request.
            self.loop.call_soon(answer.start)
        else:
            self.runner.start(exchange)

    async def aclose(self) -> None:
        await self.runner.aclose()


class StaticAnswer:
    """One request for a file: the exchange's receiver (a body sent along is read and
    dropped), and the answer. It finishes the exchange once, whatever happens."""

    __slots__ = ("exchange", "static", "task")

    def __init__(self, exchange: Exchange, static: StaticRunner) -> None:
        self.exchange = exchange
        self.static = static
        self.task: asyncio.Task[None] | None = None

    def _nothing_to_do(self, *news: object) -> None:
        """A body sent along is dropped; the body's task needs no word of a disconnect or a
        drained socket: drain() returns and its next send raises ClientDisconnected."""

    feed = end = disconnect = writable = server_stopping = _nothing_to_do

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def start(self) -> None:
        exchange = self.exchange
        sending = False
        try:
            sending = self._answer(exchange)
        except NotServed as refusal:
            body = b"%d %s\n" % (refusal.status, phrase(refusal.status))
            with contextlib.suppress(ClientDisconnected):
                exchange.respond(refusal.status, [_TEXT_PLAIN, *refusal.headers], body, True)
        except ClientDisconnected:
            pass
        except OSError as exc:  # reading a file just opened failed: finish() answers 500
            logger.error("Static file for %s: %s", _describe(exchange), exc)
        if not sending:
            exchange.finish()

    def _answer(self, exchange: Exchange) -> bool:
        """Answer, or raise NotServed; True when a task goes on sending the body."""
        method = exchange.method
        if method != "GET" and method != "HEAD":
            raise NotServed(405, [(b"allow", b"GET, HEAD")])
        path = exchange.path
        mount = next(m for m in self.static.mounts if path.startswith(m.start))
        name = resolve(mount, path[len(mount.start) :])
        try:
            fd = os.open(name, _OPEN_FLAGS)
        except OSError:
            raise NotServed(404) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise NotServed(404)
            size = info.st_size
            # RFC 9110 section 8.8.2.1: never a Last-Modified later than now.
            modified = min(info.st_mtime_ns // 1_000_000_000, int(time.time()))
            etag = b'"%x-%x"' % (size, info.st_mtime_ns)
            date = formatdate(modified, usegmt=True).encode("ascii")  # the IMF-fixdate form
            headers = [(b"etag", etag), (b"last-modified", date)]
            fields: dict[bytes, bytes] = {}
            for field, value in exchange.headers:
                if field in _CONDITIONS:  # a repeated field: its values as one list
                    fields[field] = fields[field] + b", " + value if field in fields else value
            status, first, length = plan(fields, method, size, etag, modified)
            if status == 304:
                exchange.respond(304, headers, b"", True)
                return False
            ext = os.path.splitext(name)[1].lower()
            headers.append((b"content-type", self.static.types.get(ext, _OCTETS)))
            headers.append((b"accept-ranges", b"bytes"))
            if status == 206:
                last = first + length - 1
                headers.append((b"content-range", b"bytes %d-%d/%d" % (first, last, size)))
            headers.append((b"content-length", b"%d" % length))
            if method == "HEAD" or length <= WHOLE_MAX:
                body = os.pread(fd, length, first) if method == "GET" and length else b""
                if method == "GET" and len(body) != length:
                    raise OSError("the file shrank while it was read")
                exchange.respond(status, headers, body, True)
                return False
            exchange.respond(status, headers, b"", False)
            file = open(fd, "rb", buffering=0)  # noqa: SIM115  # the task closes it
            fd = -1
            self.task = self.static.loop.create_task(
                self._send(file, first, length), name=TASK_NAME
            )
            return True
        finally:
            if fd >= 0:
                os.close(fd)

    async def _send(self, file: Any, offset: int, count: int) -> None:
        """The rest of the body; the file closed and the exchange finished on every path
        (an unfinished body cuts the connection: finish())."""
        exchange = self.exchange
        reading: asyncio.Future[bytes] | None = None
        try:
            if exchange.can_send_file():
                await exchange.send_file(file, offset, count)
                return
            end, fd, loop = offset + count, file.fileno(), self.static.loop
            while offset < end:
                size = min(READ_BLOCK, end - offset)
                reading = loop.run_in_executor(None, os.pread, fd, size, offset)
                # Shielded: a cancelled send must not close the file under a read.
                data = await asyncio.shield(reading)
                if not data:
                    raise OSError("the file shrank while it was sent")
                offset += len(data)
                exchange.send_body(data, offset >= end)
                if offset < end and exchange.write_paused:
                    await exchange.drain()
        except ClientDisconnected:
            pass
        except ResponseError as exc:  # sendfile failed: mostly a client that went away
            logger.info("Static file for %s: %s; closing", _describe(exchange), exc)
        except OSError as exc:
            logger.error("Static file for %s: %s; closing", _describe(exchange), exc)
        finally:
            if reading is not None and not reading.done():
                reading.add_done_callback(lambda _: file.close())
            else:
                file.close()
            exchange.finish()


def _describe(exchange: Exchange) -> str:
    return f"{exchange.method} {printable(exchange.path.decode('latin-1'))}"
