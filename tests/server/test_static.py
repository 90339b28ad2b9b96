"""Static files in memory: the settings, the path rules, ranges and conditional requests as
pure functions, then whole answers of a real `StaticRunner` on a real `HTTP11Exchange` over
a fake connection (tests/exchange_support.py), the real sans-IO protocol under it.

The large-body path is run on uvloop, whose transports have no sendfile, so the body is read
in blocks and written through the exchange, where the test sees every byte; the sendfile
path needs a socket and is in tests/e2e/test_static.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import uvloop
from tests.exchange_support import FakeConnection, wait_until

from rootserve.protocol.exchange import Exchange
from rootserve.server.exchange import HTTP11Exchange
from rootserve.server.static import (
    READ_BLOCK,
    WHOLE_MAX,
    Mount,
    NotServed,
    StaticRunner,
    byte_range,
    content_types,
    parse_static,
    plan,
    preconditions,
    resolve,
)

SECRET = b"TOP-SECRET-2f1c9a"  # the content of a file next to the served folder
MTIME = 1_700_000_000  # seconds: every file's modification time
LAST_MODIFIED = formatdate(MTIME, usegmt=True)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A served folder `site/` with a secret next to it, and symlinks in and out."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    files = {
        "hello.txt": b"hello\n",
        "app.js": b"let a = 1;\n",
        "data.unknownext": b"\x00\x01",
        ".env": SECRET,
        "sub/index.html": b"<h1>sub</h1>\n",
        "sub/.hidden": SECRET,
        "with space.txt": b"space\n",
        "caf\u00e9.txt": b"cafe\n",
        "empty.txt": b"",
        "big.bin": bytes(range(256)) * (5 * READ_BLOCK // 256 + 7),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
        os.utime(root / name, (MTIME, MTIME))
    (root / "inside").symlink_to("hello.txt")
    (root / "outside").symlink_to("../secret.txt")
    (root / "to_dotfile").symlink_to(".env")
    (root / "up").symlink_to("..")
    os.mkfifo(root / "fifo")
    return root


# -- the settings ----------------------------------------------------------------------------


def test_parse_static_makes_mounts_longest_prefix_first(site: Path) -> None:
    mounts = parse_static([f"/static={site}", f"/static/img/={site / 'sub'}", f"/={site}"])
    assert [m.start for m in mounts] == [b"/static/img/", b"/static/", b"/"]
    assert mounts[0].root == str(site / "sub") + "/"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("static=DIR", "write it as /PREFIX=DIR"),
        ("/static", "write it as /PREFIX=DIR"),
        ("/static=", "write it as /PREFIX=DIR"),
        ("/st atic=DIR", "use only letters"),
        ("/static%2f=DIR", "use only letters"),
        ("/static=MISSING", "is not an existing folder"),
        ("/static=FILE", "is not an existing folder"),
    ],
)
def test_a_bad_static_value_is_one_line_naming_it_and_the_fix(
    site: Path, value: str, says: str
) -> None:
    value = value.replace("MISSING", str(site / "nope")).replace("FILE", str(site / "hello.txt"))
    value = value.replace("DIR", str(site))
    with pytest.raises(ValueError, match=says) as caught:
        parse_static([value])
    assert repr(value) in str(caught.value) and "\n" not in str(caught.value)


def test_a_prefix_given_twice_is_refused(site: Path) -> None:
    with pytest.raises(ValueError, match="given twice"):
        parse_static([f"/static={site}", f"/static/={site}"])


# -- the path rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rest", "status"),
    [
        (b"../secret.txt", 404),
        (b"%2e%2e/secret.txt", 404),
        (b"%2E%2E%2Fsecret.txt", 404),
        (b"..%2fsecret.txt", 404),
        (b"sub/../../secret.txt", 404),
        (b"sub/%2e%2e/%2e%2e/secret.txt", 404),
        (b"./hello.txt", 404),
        (b"/etc/passwd", 404),  # an empty segment: never an absolute path
        (b"sub//index.html", 404),
        (b".env", 404),
        (b"%2eenv", 404),
        (b"sub/.hidden", 404),
        (b"outside", 404),  # a symlink out of the folder
        (b"up/secret.txt", 404),
        (b"to_dotfile", 404),  # a symlink to a dotfile
        (b"C:/Windows/win.ini", 404),
        (b"hello.txt::$DATA", 404),
        (b"..\\secret.txt", 400),
        (b"..%5csecret.txt", 400),
        (b"C:%5cWindows", 400),
        (b"hello.txt%00.png", 400),
        (b"%00", 400),
        (b"hello%0a.txt", 400),
        (b"%zz", 400),
        (b"%", 400),
        (b"hello.tx%7", 400),
        (b"%ff.txt", 400),  # not UTF-8
    ],
)
def test_a_path_that_leaves_the_folder_or_breaks_a_rule_is_refused(
    site: Path, rest: bytes, status: int
) -> None:
    mount = parse_static([f"/s={site}"])[0]
    with pytest.raises(NotServed) as caught:
        resolve(mount, rest)
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("rest", "name"),
    [
        (b"hello.txt", "hello.txt"),
        (b"with%20space.txt", "with space.txt"),
        (b"caf%C3%A9.txt", "caf\u00e9.txt"),
        (b"sub/", "sub/index.html"),
        (b"", "index.html"),  # the folder itself: its index.html (none here: 404 later)
        (b"inside", "hello.txt"),  # a symlink inside the folder is followed
        (b"%252e%252e", "%2e%2e"),  # decoded once: a file literally named %2e%2e
    ],
)
def test_a_good_path_names_a_file_in_the_folder(site: Path, rest: bytes, name: str) -> None:
    mount = Mount(b"/s/", str(site.resolve()) + "/")
    assert resolve(mount, rest) == str(site.resolve() / name)


# -- ranges and conditional requests ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "size", "span"),
    [
        (b"bytes=0-99", 1000, (0, 99)),
        (b"bytes=100-199", 1000, (100, 199)),
        (b"bytes=100-", 1000, (100, 999)),
        (b"bytes=-500", 1000, (500, 999)),
        (b"bytes=-5000", 1000, (0, 999)),
        (b"bytes=990-2000", 1000, (990, 999)),
        (b"BYTES = 0-0", 1000, (0, 0)),  # the unit is case-insensitive
        (b"bytes=0-1,5-6", 1000, None),  # several ranges: the whole file
        (b"bytes=0-1, 5-6", 1000, None),
        (b"items=0-1", 1000, None),
        (b"bytes=5-1", 1000, None),  # invalid: ignored
        (b"bytes=abc", 1000, None),
        (b"bytes=-", 1000, None),
        (b"bytes=0-99999999999999999999", 1000, None),  # past 18 digits: ignored
    ],
)
def test_byte_range(value: bytes, size: int, span: tuple[int, int] | None) -> None:
    assert byte_range(value, size) == span


@pytest.mark.parametrize(
    ("value", "size"), [(b"bytes=1000-", 1000), (b"bytes=-0", 1000), (b"bytes=0-", 0)]
)
def test_an_unsatisfiable_range_is_416_with_the_size(value: bytes, size: int) -> None:
    with pytest.raises(NotServed) as caught:
        byte_range(value, size)
    assert caught.value.status == 416
    assert caught.value.headers == [(b"content-range", b"bytes */%d" % size)]


ETAG = b'"5-abc"'
EARLIER = formatdate(MTIME - 60, usegmt=True).encode()
SAME = LAST_MODIFIED.encode()
LATER = formatdate(MTIME + 60, usegmt=True).encode()
FUTURE = formatdate(4_000_000_000, usegmt=True).encode()


@pytest.mark.parametrize(
    ("fields", "verdict"),
    [
        ({}, 0),
        ({b"if-none-match": ETAG}, 304),
        ({b"if-none-match": b"W/" + ETAG}, 304),  # weak comparison
        ({b"if-none-match": b'"x", ' + ETAG}, 304),
        ({b"if-none-match": b"*"}, 304),
        ({b"if-none-match": b'"other"'}, 0),
        ({b"if-modified-since": SAME}, 304),
        ({b"if-modified-since": LATER}, 304),
        ({b"if-modified-since": EARLIER}, 0),
        ({b"if-modified-since": FUTURE}, 0),  # later than now: invalid, ignored
        ({b"if-modified-since": b"yesterday"}, 0),
        ({b"if-modified-since": b"Tuesday, 14-Nov-23 22:13:20 GMT"}, 304),  # RFC 850 form
        ({b"if-modified-since": b"Sunday, 06-Nov-94 08:49:37 GMT"}, 0),
        ({b"if-modified-since": time.asctime(time.gmtime(MTIME)).encode()}, 304),  # asctime
        ({b"if-none-match": b'"other"', b"if-modified-since": SAME}, 0),  # INM wins
        ({b"if-match": ETAG}, 0),
        ({b"if-match": b"*"}, 0),
        ({b"if-match": b'"other"'}, 412),
        ({b"if-match": b"W/" + ETAG}, 412),  # strong comparison
        ({b"if-unmodified-since": EARLIER}, 412),
        ({b"if-unmodified-since": SAME}, 0),
        ({b"if-unmodified-since": b"garbage"}, 0),
        ({b"if-match": ETAG, b"if-unmodified-since": EARLIER}, 0),  # If-Match wins
        ({b"if-match": b'"other"', b"if-none-match": ETAG}, 412),  # 412 is decided first
    ],
)
def test_preconditions(fields: dict[bytes, bytes], verdict: int) -> None:
    assert preconditions(fields, ETAG, MTIME) == verdict


@pytest.mark.parametrize(
    ("fields", "method", "answer"),
    [
        ({b"range": b"bytes=0-9"}, "GET", (206, 0, 10)),
        ({b"range": b"bytes=0-9"}, "HEAD", (200, 0, 100)),  # Range is for GET only
        ({b"range": b"bytes=0-9", b"if-range": ETAG}, "GET", (206, 0, 10)),
        ({b"range": b"bytes=0-9", b"if-range": b'"old"'}, "GET", (200, 0, 100)),
        ({b"range": b"bytes=0-9", b"if-range": b"W/" + ETAG}, "GET", (200, 0, 100)),
        ({b"range": b"bytes=0-9", b"if-range": SAME}, "GET", (206, 0, 10)),
        ({b"range": b"bytes=0-9", b"if-range": EARLIER}, "GET", (200, 0, 100)),
        ({b"range": b"bytes=500-", b"if-range": b'"old"'}, "GET", (200, 0, 100)),
        ({b"if-none-match": ETAG, b"range": b"bytes=0-9"}, "GET", (304, 0, 0)),
    ],
)
def test_plan_applies_a_range_only_while_if_range_holds(
    fields: dict[bytes, bytes], method: str, answer: tuple[int, int, int]
) -> None:
    assert plan(fields, method, 100, ETAG, MTIME) == answer


def test_content_types_are_the_same_everywhere_and_text_says_utf_8() -> None:
    types = content_types()
    assert types[".js"] == b"text/javascript; charset=utf-8"
    assert types[".html"] == b"text/html; charset=utf-8"
    assert types[".png"] == b"image/png"
    assert types[".woff2"] == b"font/woff2"


# -- whole answers ---------------------------------------------------------------------------


class SpyRunner:
    """The app's runner: records what reaches it and answers 200 "app"."""

    def __init__(self) -> None:
        self.attached: list[bytes] = []
        self.started: list[bytes] = []

    def attach(self, exchange: Exchange) -> None:
        self.attached.append(exchange.path)

    def start(self, exchange: Exchange) -> None:
        self.started.append(exchange.path)
        exchange.respond(200, [], b"app", True)
        exchange.finish()

    async def aclose(self) -> None:
        return None


class Answer:
    """The one response a fake connection got, parsed."""

    def __init__(self, conn: FakeConnection) -> None:
        head, _, self.body = conn.wire.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        fields = (line.split(": ", 1) for line in lines[1:])
        self.headers = {name.lower(): value for name, value in fields}
        self.keep_alive = conn.completed == [True]


def serve_one(
    site: Path, raw: bytes, spy: SpyRunner | None = None, *, static: str = "/static"
) -> Answer:
    async def go() -> Answer:
        conn = FakeConnection()
        loop = asyncio.get_running_loop()
        runner = StaticRunner(spy or SpyRunner(), parse_static([f"{static}={site}"]), loop=loop)
        exchange = conn.open(raw, runner)
        conn.start(runner, exchange)
        await wait_until(lambda: exchange not in conn.state.running)  # finished
        return Answer(conn)

    return on_uvloop(go)


def on_uvloop(test: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(test())


def get(path: str, *fields: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: t", *fields, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def test_a_path_under_no_mount_goes_to_the_app_and_one_under_a_mount_never(site: Path) -> None:
    spy = SpyRunner()
    for path in ["/", "/static", "/staticfile", "/st%61tic/hello.txt", "/other/static/x"]:
        assert serve_one(site, get(path), spy).body == b"app"
    assert (
        spy.attached
        == spy.started
        == [
            b"/",
            b"/static",
            b"/staticfile",
            b"/st%61tic/hello.txt",
            b"/other/static/x",
        ]
    )
    for path in ["/static/hello.txt", "/static/nope", "/static/%2e%2e/secret.txt", "/static/"]:
        assert serve_one(site, get(path), spy).status in (200, 400, 404)
    assert len(spy.started) == 5


def test_a_file_with_its_headers(site: Path) -> None:
    answer = serve_one(site, get("/static/app.js"))
    assert (answer.status, answer.body) == (200, b"let a = 1;\n")
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
    assert answer.headers["content-length"] == "11"
    assert answer.headers["last-modified"] == LAST_MODIFIED
    assert answer.headers["etag"] == '"b-%x"' % (MTIME * 10**9)
    assert answer.headers["accept-ranges"] == "bytes"
    assert "cache-control" not in answer.headers
    assert answer.keep_alive


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/static/sub/", 200, b"<h1>sub</h1>\n"),
        ("/static/sub", 404, b"404 Not Found\n"),  # a folder, without the slash
        ("/static/", 404, b"404 Not Found\n"),  # no index.html in the folder
        ("/static/nope.txt", 404, b"404 Not Found\n"),
        ("/static/fifo", 404, b"404 Not Found\n"),  # not a regular file (and no hang)
        ("/static/inside", 200, b"hello\n"),
        ("/static/empty.txt", 200, b""),
        ("/static/data.unknownext", 200, b"\x00\x01"),
        ("/static/%2e%2e/secret.txt", 404, b"404 Not Found\n"),
        ("/static/outside", 404, b"404 Not Found\n"),
        ("/static/..%5csecret.txt", 400, b"400 Bad Request\n"),
    ],
)
def test_answers(site: Path, path: str, status: int, body: bytes) -> None:
    answer = serve_one(site, get(path))
    assert (answer.status, answer.body) == (status, body)
    assert answer.keep_alive


def test_the_prefix_slash_serves_everything(site: Path) -> None:
    assert serve_one(site, get("/hello.txt"), static="/").body == b"hello\n"


def test_other_methods_are_405_with_allow(site: Path) -> None:
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        raw = get("/static/hello.txt", "Content-Length: 3", method=method) + b"abc"
        answer = serve_one(site, raw)
        assert (answer.status, answer.headers["allow"]) == (405, "GET, HEAD")
        assert answer.keep_alive  # the body was read and dropped


def test_head_has_the_headers_of_get_and_no_body(site: Path) -> None:
    head = serve_one(site, get("/static/big.bin", method="HEAD"))
    full = serve_one(site, get("/static/big.bin", "Range: bytes=0-9"))
    assert (head.status, head.body) == (200, b"")
    assert head.headers["content-length"] == str((site / "big.bin").stat().st_size)
    assert head.headers["etag"] == full.headers["etag"]


def test_304_carries_the_validators_and_no_body(site: Path) -> None:
    etag = serve_one(site, get("/static/hello.txt")).headers["etag"]
    for method in ("GET", "HEAD"):
        answer = serve_one(site, get("/static/hello.txt", f"If-None-Match: {etag}", method=method))
        assert (answer.status, answer.body) == (304, b"")
        assert answer.headers["etag"] == etag
        assert answer.headers["last-modified"] == LAST_MODIFIED
        assert "content-length" not in answer.headers


def test_412_and_416(site: Path) -> None:
    answer = serve_one(site, get("/static/hello.txt", 'If-Match: "nope"'))
    assert answer.status == 412
    answer = serve_one(site, get("/static/hello.txt", "Range: bytes=6-"))
    assert (answer.status, answer.headers["content-range"]) == (416, "bytes */6")


@pytest.mark.parametrize(
    ("range_", "first", "last"),
    [("0-9", 0, 9), ("1000-1999", 1000, 1999), ("-100", None, None), ("70000-", 70000, None)],
)
def test_a_range_is_206(site: Path, range_: str, first: int | None, last: int | None) -> None:
    data = (site / "big.bin").read_bytes()
    answer = serve_one(site, get("/static/big.bin", f"Range: bytes={range_}"))
    start = len(data) - 100 if first is None else first
    end = len(data) - 1 if last is None else last
    assert answer.status == 206
    assert answer.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
    assert answer.body == data[start : end + 1]


def test_a_large_body_goes_out_in_blocks_and_the_file_is_closed(site: Path) -> None:
    data = (site / "big.bin").read_bytes()
    assert len(data) > 4 * READ_BLOCK > WHOLE_MAX
    before = open_files()
    answer = serve_one(site, get("/static/big.bin"))
    assert answer.status == 200 and answer.body == data and answer.keep_alive
    assert open_files() == before


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


class GatedConnection(FakeConnection):
    """A connection whose socket takes nothing until `gate` is set (drain() waits)."""

    def __init__(self) -> None:
        super().__init__()
        self.write_paused = True
        self.gate = asyncio.Event()
        self.waiting = False

    async def drain(self) -> None:
        self.waiting = True
        await self.gate.wait()


def big_send(site: Path, act: Callable[[HTTP11Exchange, FakeConnection], None]) -> FakeConnection:
    """Start sending big.bin; after its first block is written, `act`; wait for the end,
    and for the file to be closed (a read under way when the send stopped closes it)."""

    async def go() -> FakeConnection:
        before = open_files()
        conn = GatedConnection()
        loop = asyncio.get_running_loop()
        runner = StaticRunner(SpyRunner(), parse_static([f"/static={site}"]), loop=loop)
        exchange = conn.open(get("/static/big.bin"), runner)
        conn.start(runner, exchange)
        await wait_until(lambda: conn.waiting)  # the head and a block are out, it drains
        act(exchange, conn)
        conn.gate.set()
        await wait_until(lambda: exchange not in conn.state.running)
        await wait_until(lambda: open_files() == before)
        return conn

    return on_uvloop(go)  # type: ignore[no-any-return]


def test_a_client_gone_mid_file_stops_the_body_and_the_file_is_closed(site: Path) -> None:
    conn = big_send(site, lambda exchange, conn: exchange.disconnect())
    assert len(conn.wire) < (site / "big.bin").stat().st_size
    assert conn.completed == []


def test_a_cancelled_send_cuts_the_connection_and_closes_the_file(site: Path) -> None:
    conn = big_send(site, lambda exchange, conn: exchange.cancel())
    assert conn.aborted and conn.completed == []
