"""The access log with real requests: rootserve in a thread (`serve`) for ASGI and WSGI
apps, and the `rootserve` command for --log-format json and --log-config."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.helpers import ROOT, run_cli, serve, start_cli
from tests.wsgi.support import serve_wsgi
from websockets.sync.client import connect

from rootserve.types import Receive, Scope, Send

FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(i)s "%({user-agent}i)s" %({x-app}o)s %(D)s'
LINE = re.compile(r'127\.0\.0\.1 "(.*)" (\d+) (\S+) (\S+) "(.*)" (\S+) (\d+)')
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
APP = "tests.apps.pid_app:app"


@pytest.fixture
def access() -> Iterator[list[str]]:
    """The access log's lines (its logger's own handler: propagation may be off)."""
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("rootserve.access")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def parsed(messages: list[str]) -> list[tuple[str, ...]]:
    rows = []
    for message in messages:
        match = LINE.fullmatch(message)
        assert match is not None, message
        rows.append(match.groups())
    return rows


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/boom":
        raise ValueError("before the answer: a 500")
    headers = [(b"x-app", b"asgi")]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        await send({"type": "http.response.body", "body": b"cde"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/boom":
        raise ValueError("before the answer: a 500")
    start_response("200 OK", [("X-App", "wsgi"), ("Content-Type", "text/plain")])
    if environ["PATH_INFO"] == "/stream":
        return iter([b"ab", b"cde"])  # no length: chunked, counted part by part
    return [b"hello"]


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_lines_for_real_requests(access: list[str], kind: str) -> None:
    settings = {"access_log": True, "access_log_format": FORMAT}
    settings["access_log_exclude"] = ["/healthz", "/static/*"]
    served = serve(asgi_app, **settings) if kind == "asgi" else serve_wsgi(wsgi_app, **settings)
    with served as running, httpx.Client(base_url=running.url) as client:
        ua = {"user-agent": b'probe/1 "quoted" \xc3\xa9'}  # obs-text: allowed, escaped
        assert client.get("/hello?x=1", headers={**ua, "x-request-id": "req-1"}).text == "hello"
        client.head("/hello", headers=ua)
        assert client.post("/stream", content=b"body", headers=ua).text == "abcde"
        for path in ("/healthz", "/healthz?deep=1", "/static/app.css"):
            client.get(path, headers=ua)
        boom = client.get("/boom", headers=ua)
        assert boom.status_code == 500
    rows = parsed(access)
    assert [row[:2] for row in rows] == [
        ("GET /hello?x=1 HTTP/1.1", "200"),
        ("HEAD /hello HTTP/1.1", "200"),
        ("POST /stream HTTP/1.1", "200"),
        ("GET /boom HTTP/1.1", "500"),
    ]
    assert [row[2] for row in rows] == ["5", "-", "5", boom.headers["content-length"]]
    assert rows[0][3] == "req-1"
    assert all(re.fullmatch(r"[0-9a-f]{32}", row[3]) for row in rows[1:])
    assert len({row[3] for row in rows}) == len(rows)
    assert all(row[4] == r"probe/1 \x22quoted\x22 \xc3\xa9" for row in rows)
    assert [row[5] for row in rows] == [kind, kind, kind, "-"]
    assert all(int(row[6]) > 0 for row in rows)


def test_the_common_log_format_by_default(access: list[str]) -> None:
    with serve(asgi_app, access_log=True) as running:
        httpx.get(running.url + "/hello?a=%22b%22")
    [line] = access
    pattern = r'127\.0\.0\.1 - - \[[^]]+ [+-]\d{4}\] "GET /hello\?a=%22b%22 HTTP/1\.1" 200 5'
    assert re.fullmatch(pattern, line), line


def test_a_websocket_handshake_is_one_line(access: list[str]) -> None:
    with (
        serve(asgi_app, access_log=True, access_log_format=FORMAT) as running,
        connect(f"ws://127.0.0.1:{running.port}/ws?room=1"),
    ):
        pass
    [row] = parsed(access)
    assert row[:3] == ("GET /ws?room=1 HTTP/1.1", "101", "-")


def test_sendfile_bytes_are_counted(access: list[str], tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 100_000)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", "100000")])
        return environ["wsgi.file_wrapper"](data.open("rb"))

    with serve_wsgi(app, loop="asyncio", access_log=True) as running:
        assert len(httpx.get(running.url + "/f").content) == 100_000
    assert access[0].endswith('"GET /f HTTP/1.1" 200 100000'), access


def test_json_lines(access: list[str]) -> None:
    with serve(asgi_app, access_log=True, log_format="json") as running:
        httpx.get(running.url + "/hello?q=1", headers={"traceparent": TRACE})
        httpx.get(running.url + "/stream", headers={"traceparent": "00-bad"})
    first, second = (json.loads(line) for line in access)
    assert first["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert (first["path"], first["query"], first["status"], first["bytes"]) == (
        "/hello",
        "q=1",
        200,
        5,
    )
    assert "trace_id" not in second and second["bytes"] == 5
    assert first["request_id"] != second["request_id"]
    assert first["duration_ms"] > 0 and first["client"] == "127.0.0.1"


# -- the command ---------------------------------------------------------------------------


def cli_args(*extra: str) -> list[str]:
    return ["--app-dir", str(ROOT), "--port", "0", "--lifespan", "off", *extra, APP]


@pytest.mark.parametrize("workers", [[], ["-w", "1"]])
def test_every_line_is_json_with_log_format_json(workers: list[str]) -> None:
    with start_cli(*cli_args("--log-format", "json", *workers)) as server:
        httpx.get(server.url + "/x?y=1", headers={"traceparent": TRACE})
    records = [json.loads(line) for line in server.lines if line.strip()]
    access = [r for r in records if r["logger"] == "rootserve.access"]
    assert [(r["path"], r["query"], r["trace_id"]) for r in access] == [
        ("/x", "y=1", "0af7651916cd43dd8448eb211c80319c")
    ]
    listening = [r["pid"] for r in records if r.get("message", "").startswith("Listening on")]
    assert access[0]["pid"] in listening
    assert (server.proc.pid in listening) == (not workers)


LOG_CONFIG_TOML = """
version = 1
[formatters.plain]
format = "%(name)s|%(message)s"
[formatters.json]
"()" = "rootserve.observe.logs.JSONFormatter"
[handlers.file]
class = "logging.FileHandler"
filename = "{access}"
formatter = "{formatter}"
[handlers.console]
class = "logging.StreamHandler"
formatter = "plain"
[loggers."rootserve.access"]
handlers = ["file"]
propagate = false
[loggers."rootserve.error"]
handlers = ["console"]
propagate = false
"""


def log_config(tmp_path: Path, suffix: str, formatter: str) -> Path:
    access = tmp_path / "access.log"
    text = LOG_CONFIG_TOML.format(access=access, formatter=formatter)
    path = tmp_path / f"logging{suffix}"
    if suffix == ".json":
        import tomllib

        path.write_text(json.dumps(tomllib.loads(text)))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_log_config_file_is_used(tmp_path: Path, suffix: str) -> None:
    config = log_config(tmp_path, suffix, "plain")
    args = cli_args("--log-config", str(config), "--access-log-exclude", "/healthz")
    with start_cli(*args) as server:
        httpx.get(server.url + "/healthz")
        httpx.get(server.url + "/seen")
    assert any(line.startswith("rootserve.error|Listening on") for line in server.lines)
    lines = (tmp_path / "access.log").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rootserve.access|127.0.0.1 - - ["), lines
    assert lines[0].endswith(' "GET /seen HTTP/1.1" 200 ' + str(len(str(server.proc.pid))))


def test_a_log_config_file_with_the_json_formatter(tmp_path: Path) -> None:
    config = log_config(tmp_path, ".toml", "json")
    with start_cli(*cli_args("--log-config", str(config), "--log-format", "json")) as server:
        httpx.get(server.url + "/j", headers={"x-request-id": "abc"})
    [line] = (tmp_path / "access.log").read_text().splitlines()
    assert json.loads(line)["request_id"] == "abc"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--log-config", "/nonexistent/logging.toml"], "--log-config /nonexistent/logging.toml: "),
        (["--access-log-format", "%(h)s %(nope)s"], "unknown placeholder %(nope)s"),
        (["--access-log-exclude", "/a*b"], "only a trailing * is a wildcard"),
    ],
)
def test_bad_logging_settings_are_one_line_and_exit_2(args: list[str], named: str) -> None:
    done = run_cli(*cli_args(*args))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and named in done.stderr, done.stderr


def test_an_invalid_log_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "logging.json"
    config.write_text('{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}')
    done = run_cli(*cli_args("--log-config", str(config)))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: --log-config {config}: Unable to configure handler")
