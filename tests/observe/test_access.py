"""observe/access.py and the formatting half of observe/logs.py, in memory: every
placeholder, the escaping of what a client sends, request and trace ids, JSON lines, the
formats refused at startup, and the excluded paths."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rootserve.config import Config, ConfigError
from rootserve.config_edge import COMMON_LOG_FORMAT
from rootserve.observe import logs
from rootserve.observe.access import (
    AccessLog,
    NullAccessLog,
    check_access_log,
    escape,
    request_id,
    trace_id,
)
from rootserve.observe.logs import JSONFormatter, clf_time, iso_time, load_log_config
from rootserve.server.exchange import HTTP11Exchange

CLIENT = ("203.0.113.7", 51234)
TRACE = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
HEX32 = re.compile(r"[0-9a-f]{32}")


def exchange(
    target: bytes = b"/a?b=1",
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    response_headers: list[tuple[bytes, bytes]] | None = None,
    sent: int = 5,
    seconds: float | None = 0.25,
) -> HTTP11Exchange:
    """A finished exchange as the server leaves it for the access log."""
    path, _, query = target.partition(b"?")
    ex = HTTP11Exchange(method, target, path, query, "1.1", headers or [], True)
    ex.response_headers = response_headers or []
    ex.sent = sent
    if seconds is not None:
        ex.started = time.perf_counter() - seconds
    return ex


@pytest.fixture
def lines() -> Iterator[list[logging.LogRecord]]:
    """The access log's records (the logger's own handler: propagation may be off)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    access = logging.getLogger("rootserve.access")
    handler, level = Keep(), access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        yield records
    finally:
        access.removeHandler(handler)
        access.setLevel(level)


def one_line(access: AccessLog, ex: HTTP11Exchange, status: int, records: list[Any]) -> str:
    records.clear()
    access.log(CLIENT, ex, status)
    assert len(records) == 1
    message: str = records[0].getMessage()
    return message


# -- text lines ----------------------------------------------------------------------------


def test_the_default_is_the_common_log_format(lines: list[logging.LogRecord]) -> None:
    line = one_line(AccessLog(), exchange(), 200, lines)
    match = re.fullmatch(r'203\.0\.113\.7 - - \[(.+)\] "GET /a\?b=1 HTTP/1\.1" 200 5', line)
    assert match is not None, line
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}", match[1])


def test_every_placeholder(lines: list[logging.LogRecord]) -> None:
    names = ["h", "t", "r", "m", "U", "q", "H", "s", "b", "B", "D", "L", "p", "i"]
    fmt = "|".join(f"%({name})s" for name in names) + "|%({User-Agent}i)s|%({x-out}o)s|%%"
    ex = exchange(
        b"/p/q?x=1&y",
        headers=[(b"user-agent", b"curl/8"), (b"x-request-id", b"req-42")],
        response_headers=[(b"X-Out", b"yes"), (b"content-type", b"text/plain")],
        sent=1234,
        seconds=0.25,
    )
    values = one_line(AccessLog(fmt), ex, 201, lines).split("|")
    got = dict(zip([*names, "ua", "out", "pct"], values, strict=True))
    assert got["h"] == "203.0.113.7"
    assert re.fullmatch(r"\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}", got["t"])
    assert got["r"] == "GET /p/q?x=1&y HTTP/1.1"
    assert (got["m"], got["U"], got["q"], got["H"]) == ("GET", "/p/q", "x=1&y", "HTTP/1.1")
    assert (got["s"], got["b"], got["B"]) == ("201", "1234", "1234")
    assert 250_000 <= int(got["D"]) < 10_000_000
    assert re.fullmatch(r"\d+\.\d{6}", got["L"]) and float(got["L"]) >= 0.25
    # One reading, two units: each rounded to its last digit, so they differ by under 1 µs
    # (and a float product may land a hair above it).
    assert abs(float(got["L"]) * 1_000_000 - int(got["D"])) < 1.000001
    assert got["p"].isdigit()
    assert got["i"] == "req-42"
    assert (got["ua"], got["out"], got["pct"]) == ("curl/8", "yes", "%")


def test_absent_values(lines: list[logging.LogRecord]) -> None:
    fmt = "%(b)s %(B)s %(D)s %(L)s %({referer}i)s %({x-none}o)s %(h)s"
    AccessLog(fmt).log(None, exchange(sent=0, seconds=None), 200)
    assert [r.getMessage() for r in lines] == ["- 0 - - - - -"]


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_no_body_is_counted_where_none_is_sent(
    lines: list[logging.LogRecord], method: str, status: int
) -> None:
    # RFC 9110 section 6.4.1: the protocol drops the body the app gave.
    line = one_line(AccessLog("%(b)s %(B)s"), exchange(method=method, sent=99), status, lines)
    assert line == "- 0"


def test_several_fields_of_one_name_are_joined(lines: list[logging.LogRecord]) -> None:
    ex = exchange(headers=[(b"accept", b"a/b"), (b"accept", b"c/d")])
    assert one_line(AccessLog("%({accept}i)s"), ex, 200, lines) == "a/b, c/d"


EVIL = b'/x"y\\z\r\nINFO: forged\x00\x1b[31m\x7f\xc3\xa9'
EVIL_ESCAPED = r"/x\x22y\x5cz\x0d\x0aINFO: forged\x00\x1b[31m\x7f\xc3\xa9"


def test_escape() -> None:
    assert escape(b"/plain path?q=1 ok") == "/plain path?q=1 ok"
    assert escape(EVIL) == EVIL_ESCAPED


def test_what_a_client_sends_cannot_forge_a_line(lines: list[logging.LogRecord]) -> None:
    fmt = '%(h)s "%(r)s" %(U)s %(q)s "%({user-agent}i)s" %({x-app}o)s %(i)s'
    ex = exchange(
        EVIL + b"?" + EVIL,
        headers=[(b"user-agent", EVIL), (b"x-request-id", b'id"\r\nforged')],
        response_headers=[(b"x-app", EVIL)],
    )
    line = one_line(AccessLog(fmt), ex, 200, lines)
    assert line.isprintable() and line.isascii(), line
    assert line.count('"') == 4  # the format's own quotes, and no other
    assert line.count(EVIL_ESCAPED) == 6  # target (path, query), path, query, UA, x-app
    assert HEX32.fullmatch(line.rsplit(" ", 1)[1])  # the bad request id was replaced


# -- request and trace ids -----------------------------------------------------------------


def test_request_id_taken_when_sane_else_made() -> None:
    assert request_id([(b"x-request-id", b"abc-123_XYZ.=/")]) == "abc-123_XYZ.=/"
    assert request_id([(b"x-request-id", b"a" * 128)]) == "a" * 128
    made = [
        request_id(headers)
        for headers in (
            [],
            [(b"x-request-id", b"")],
            [(b"x-request-id", b"a" * 129)],  # too long
            [(b"x-request-id", b"has space")],
            [(b"x-request-id", b'quo"te')],
            [(b"x-request-id", b"back\\slash")],
            [(b"x-request-id", b"cr\r")],
            [(b"x-request-id", b"\xc3\xa9")],
            [(b"x-request-id", b"a"), (b"x-request-id", b"b")],  # two: "a, b" has a space
        )
    ]
    assert all(HEX32.fullmatch(rid) for rid in made), made
    assert len(set(made)) == len(made)  # a counter after the process's prefix
    assert len({rid[:16] for rid in made}) == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (TRACE, "0af7651916cd43dd8448eb211c80319c"),
        (TRACE[:-2] + b"00", "0af7651916cd43dd8448eb211c80319c"),  # not sampled: still an id
        (b"01" + TRACE[2:], None),  # another version
        (TRACE.upper(), None),  # upper-case hex is invalid
        (b"00-" + b"0" * 32 + TRACE[35:], None),  # all-zero trace id
        (TRACE[:36] + b"0" * 16 + b"-01", None),  # all-zero parent id
        (TRACE[:-1], None),  # one flag digit
        (TRACE + b"-extra", None),  # version 00 has nothing after the flags
        (b" " + TRACE, None),
        (b"", None),
    ],
)
def test_trace_id(value: bytes, expected: str | None) -> None:
    assert trace_id([(b"traceparent", value)]) == expected


def test_two_traceparents_are_no_trace() -> None:
    assert trace_id([(b"traceparent", TRACE), (b"traceparent", TRACE)]) is None
    assert trace_id([]) is None


# -- JSON lines ----------------------------------------------------------------------------


def test_json_line(lines: list[logging.LogRecord]) -> None:
    ex = exchange(
        b"/j?k=v",
        headers=[(b"traceparent", TRACE), (b"x-request-id", b"r1"), (b"user-agent", b"ua/1")],
        sent=7,
        seconds=0.125,
    )
    line = one_line(AccessLog(as_json=True), ex, 200, lines)
    data = json.loads(line)
    assert set(data) == {
        "time", "level", "logger", "pid", "request_id", "trace_id", "method", "path",
        "query", "http_version", "status", "bytes", "duration_ms", "client", "client_port",
        "user_agent",
    }  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["time"])
    assert data["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert (data["request_id"], data["method"], data["path"], data["query"]) == (
        "r1", "GET", "/j", "k=v",
    )  # fmt: skip
    assert (data["status"], data["bytes"], data["http_version"]) == (200, 7, "1.1")
    assert 125 <= data["duration_ms"] < 10_000
    assert (data["client"], data["client_port"], data["user_agent"]) == (*CLIENT, "ua/1")
    # The formatter writes an access line as it is.
    assert JSONFormatter().format(lines[0]) == line


def test_json_line_without_trace_or_agent(lines: list[logging.LogRecord]) -> None:
    data = json.loads(one_line(AccessLog(as_json=True), exchange(), 200, lines))
    assert "trace_id" not in data and "user_agent" not in data
    assert HEX32.fullmatch(data["request_id"])


def test_json_lines_escape_by_construction(lines: list[logging.LogRecord]) -> None:
    ex = exchange(EVIL + b"?" + EVIL, headers=[(b"user-agent", EVIL)])
    line = one_line(AccessLog(as_json=True), ex, 200, lines)
    assert line.isprintable() and line.isascii(), line
    data = json.loads(line)
    decoded = EVIL.decode("utf-8", "backslashreplace")
    assert data["path"] == data["query"] == data["user_agent"] == decoded


def test_json_error_records() -> None:
    try:
        raise ValueError("kaput\r\nINFO: forged")
    except ValueError:
        record = logging.getLogger("rootserve.error").makeRecord(
            "rootserve.error", logging.ERROR, __file__, 1, "Exception in %s", ("app\x1b",),
            exc_info=sys.exc_info(),
        )  # fmt: skip
    line = JSONFormatter().format(record)
    assert "\n" not in line and line.isprintable()
    data = json.loads(line)
    assert (data["level"], data["logger"], data["message"]) == (
        "error", "rootserve.error", "Exception in app\x1b",
    )  # fmt: skip
    assert data["pid"] == record.process
    assert "Traceback" in data["exception"] and "forged" in data["exception"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["time"])


def test_times(monkeypatch: pytest.MonkeyPatch) -> None:
    # The common log format's own example: 10/Oct/2000:13:55:36 -0700 (Pacific daylight).
    monkeypatch.setenv("TZ", "PST8PDT,M4.1.0,M10.5.0")
    time.tzset()
    try:
        monkeypatch.setattr(logs, "_clf_cache", (-1, ""))
        assert clf_time(971211336.5) == "10/Oct/2000:13:55:36 -0700"
        assert clf_time(971211336.9) == "10/Oct/2000:13:55:36 -0700"  # cached
        assert clf_time(978307200.0) == "31/Dec/2000:16:00:00 -0800"
    finally:
        monkeypatch.undo()
        time.tzset()
    assert iso_time(971211336.0456) == "2000-10-10T20:55:36.045Z"
    assert iso_time(971211337.75) == "2000-10-10T20:55:37.750Z"


# -- formats refused -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "named"),
    [
        ("%(x)s", "%(x)s"),
        ("%(h)s %(user_agent)s", "%(user_agent)s"),
        ("%({bad name}i)s", "%({bad name}i)s"),
        ("%({}i)s", "%({}i)s"),
        ("%({x}z)s", "%({x}z)s"),
        ("%(h)d", "%(h) must end in )s"),
        ("%(h)", "%(h) must end in )s"),
        ("%h %s", "a lone % at character 1"),
        ("100% sure", "a lone % at character 4"),
        ("%(h", "a lone % at character 1"),
        ("%", "a lone % at character 1"),
    ],
)
def test_bad_formats_are_one_line_errors(fmt: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_access_log(Config(access_log_format=fmt))
    message = str(caught.value)
    assert message.startswith("--access-log-format: ") and named in message, message
    assert "\n" not in message


def test_good_formats() -> None:
    for fmt in (COMMON_LOG_FORMAT, "", "no placeholders", "100%% %(s)s", "%({X-Y_z}o)s"):
        check_access_log(Config(access_log_format=fmt))
    check_access_log(Config(access_log_exclude=["/healthz", "/static/*", "*"]))


@pytest.mark.parametrize(("pattern", "named"), [("/a*b", "trailing *"), ("healthz", "with /")])
def test_bad_excludes(pattern: str, named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        check_access_log(Config(access_log_exclude=[pattern]))


def test_excludes(lines: list[logging.LogRecord]) -> None:
    access = AccessLog("%(U)s", exclude=["/healthz", "/static/*"])
    for target in (b"/healthz", b"/healthz?probe=1", b"/static/", b"/static/a.css?v=2"):
        access.log(CLIENT, exchange(target), 200)
    assert lines == []
    for target in (b"/healthz/x", b"/healthzz", b"/static", b"/", b"/Healthz"):
        access.log(CLIENT, exchange(target), 200)
    assert [r.getMessage() for r in lines] == [
        "/healthz/x",
        "/healthzz",
        "/static",
        "/",
        "/Healthz",
    ]


# -- the clock -----------------------------------------------------------------------------


class Runner:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def attach(self, exchange: Any) -> None:
        self.calls.append(("attach", exchange))

    def start(self, exchange: Any) -> None:
        self.calls.append(("start", exchange))

    async def aclose(self) -> None:
        self.calls.append(("aclose", None))


def test_the_clock_is_read_only_for_a_duration() -> None:
    runner = Runner()
    assert NullAccessLog().timed(runner) is runner
    assert AccessLog().timed(runner) is runner  # the common log format shows no duration
    for access in (AccessLog("%(D)s"), AccessLog("%(L)s"), AccessLog(as_json=True)):
        timed = access.timed(runner)
        assert timed is not runner
        ex = exchange(seconds=None)
        before = time.perf_counter()
        timed.attach(ex)
        timed.start(ex)
        assert before <= ex.started <= time.perf_counter()
        assert runner.calls[-2:] == [("attach", ex), ("start", ex)]


# -- --log-config files (applying one: tests/e2e/test_access_log.py) -----------------------


def test_log_config_files(tmp_path: Any) -> None:
    (tmp_path / "a.json").write_text('{"version": 1, "loggers": {}}')
    (tmp_path / "a.toml").write_text("version = 1\n[loggers]\n")
    assert load_log_config(str(tmp_path / "a.json")) == {"version": 1, "loggers": {}}
    assert load_log_config(str(tmp_path / "a.toml")) == {"version": 1, "loggers": {}}


@pytest.mark.parametrize(
    ("name", "text", "named"),
    [
        ("missing.json", None, "No such file"),
        ("bad.json", "{version: 1", "not valid JSON"),
        ("bad.toml", "version = ", "not valid TOML"),
        ("list.json", "[1]", "dictConfig object"),
        ("latin.toml", b"k = '\xe9'", "not valid TOML"),
        ("a.yaml", "version: 1", "a .json or .toml file"),
    ],
)
def test_bad_log_config_files(
    tmp_path: Any, name: str, text: str | bytes | None, named: str
) -> None:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_log_config(str(path))
    message = str(caught.value)
    assert message.startswith(f"--log-config {path}: ") and named in message, message
    assert "\n" not in message
