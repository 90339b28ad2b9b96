"""Chapter 6: its examples' claims, the trace output it shows, and its table of what
rootserve does where the chapter-3 server fell short (each module and setting named there
exists, and each "always on" behaviour is checked through rootserve.testing.Client)."""

import asyncio
import re
import sys

import ch3_middleware
import ch6_apps
import ch6_ex2
import ch6_middleware
import ch6_testing
import pytest
from fastapi import FastAPI
from guide_support import GUIDE, OUTPUT, REPO, call_validated, normalise, run_example

from rootserve.testing import Client

PAGE = GUIDE / "06-from-protocol-to-framework.md"

# A --trace block's times (0.515 ms) and request ids change on every run.
TRACE_MASKS = [
    (re.compile(r"^ *\d+\.\d{3} ms", re.MULTILINE), "    N.NNN ms"),
    (re.compile(r" id [0-9a-f]{32}$", re.MULTILINE), " id ID"),
]


def masked(text):
    for pattern, replacement in TRACE_MASKS:
        text = pattern.sub(replacement, text)
    return normalise(text)


def test_the_trace_output_on_the_page_is_what_ch6_testing_prints():
    printed = run_example("ch6_testing.py")
    expected = (OUTPUT / "ch6_testing.txt").read_text(encoding="utf-8")
    assert masked(printed) == masked(expected)
    # Both contracts' blocks are there, for the same request.
    assert "── wsgi · POST /echo" in printed
    assert "── asgi http · POST /echo" in printed


@pytest.mark.parametrize(
    "app", [ch6_apps.flask_app, ch6_apps.fastapi_app], ids=["flask", "fastapi"]
)
def test_the_shared_checks_pass_for_both_frameworks(app):
    ch6_testing.check(app)


def test_the_shared_checks_fail_for_an_app_that_answers_wrongly():
    def wrong(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Hello, Bob!\n"]

    with pytest.raises(AssertionError):
        ch6_testing.check(wrong)


@pytest.mark.parametrize(
    ("method", "target", "body", "status"),
    [
        ("GET", "/greet?name=Ada", b"", "200 OK"),
        ("POST", "/echo", b"ping", "200 OK"),
        ("GET", "/missing", b"", "404 NOT FOUND"),
    ],
)
def test_the_flask_app_and_its_timing_wrapper_keep_the_wsgi_contract(method, target, body, status):
    for app in (ch6_apps.flask_app, ch3_middleware.timing(ch6_apps.flask_app)):
        got, _, _ = call_validated(app, method, target, body, "text/plain" if body else None)
        assert got == status


def test_head_is_the_frameworks_decision():
    # The page: Werkzeug adds HEAD to every GET rule; FastAPI's @app.get does not.
    with Client(ch6_apps.flask_app) as client:
        response = client.head("/greet")
        assert (response.status, response.body) == (200, b"")
        assert response.header("content-length") == str(len(b"Hello, stranger!\n"))
    with Client(ch6_apps.fastapi_app) as client:
        assert client.head("/greet").status == 405


def test_timing_asgi_adds_one_field_and_passes_lifespan_through():
    started = []

    async def lifespan(app):
        started.append(True)
        yield

    api = FastAPI(lifespan=lifespan)

    @api.get("/")
    async def index():
        return {"ok": True}

    with Client(ch6_middleware.timing_asgi(api)) as client:
        assert started == [True]
        response = client.get("/")
        assert response.json() == {"ok": True}
        fields = [value for name, value in response.headers if name == "server-timing"]
        assert len(fields) == 1
        assert re.fullmatch(r"app;dur=\d+\.\d\d", fields[0])


def test_limit_body_answers_400_for_a_length_that_is_not_a_number():
    # The server refuses such a request itself (400), so the middleware is called by hand.
    sent = []

    async def receive():
        raise AssertionError("the middleware must not read the body")

    async def send(message):
        sent.append(message)

    async def never_called(scope, receive, send):
        raise AssertionError("the app must not be called")

    scope = {"type": "http", "headers": [(b"content-length", b"ten")]}
    asyncio.run(ch6_ex2.limit_body(never_called, 16)(scope, receive, send))
    assert sent[0]["status"] == 400
    assert sent[1]["body"] == b"Bad Content-Length\n"


# -- the table: "What the chapter-3 server left out, and where rootserve does it" ---------


def table_rows():
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## What the chapter-3 server left out", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [row for row in rows if "---" not in row][1:]  # without the head and its rule


def test_the_table_has_a_row_for_each_gap_chapter_3_lists():
    rows = table_rows()
    assert len(rows) == 11
    for row in rows:
        assert row.count("|") == 5, row


def test_every_module_the_table_names_exists():
    named = {name for row in table_rows() for name in re.findall(r"`(\w+/\w+\.py)`", row)}
    assert len(named) > 10
    for name in named:
        assert (REPO / "src" / "rootserve" / name).is_file(), name


def test_every_setting_the_table_names_is_a_rootserve_flag():
    if str(REPO / "src") not in sys.path:
        sys.path.append(str(REPO / "src"))
    from rootserve.config import setting_info

    flags = {info.flag for info in setting_info() if not info.positional}
    named = {flag for row in table_rows() for flag in re.findall(r"`(--[a-z-]+)`", row)}
    assert len(named) > 10
    assert named <= flags, named - flags


CHUNKED = {"Transfer-Encoding": "chunked"}


def reporter(environ, start_response):
    """A WSGI app that answers with what it received, and a body even for HEAD."""
    body = environ["wsgi.input"].read()
    text = f"{environ['REQUEST_METHOD']} {body!r} accept={environ.get('HTTP_ACCEPT')!r}\n"
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [text.encode()]


def failing(environ, start_response):
    raise RuntimeError("the app failed before answering")


def test_rootserve_drops_the_body_of_a_head_answer():
    with Client(reporter) as client:
        response = client.head("/")
    assert (response.status, response.body) == (200, b"")


def test_rootserve_keeps_a_connection_open_and_reads_the_next_request():
    with Client(reporter) as client:
        response = client.get("/")
    assert response.header("connection") != "close"


@pytest.mark.parametrize(
    ("settings", "target", "headers", "body", "status"),
    [
        ({"max_request_line": 64}, "/" + "a" * 100, {}, b"", 414),
        ({"max_header_count": 2}, "/", {"A": "1", "B": "2", "C": "3"}, b"", 431),
        ({"max_header_size": 64}, "/", {"A": "x" * 100}, b"", 431),
        ({"max_body_size": 4}, "/", {}, b"too long", 413),
        ({"max_body_size": 4}, "/", CHUNKED, b"8\r\ntoo long\r\n0\r\n\r\n", 413),
    ],
)
def test_rootserve_enforces_the_limits_the_table_names(settings, target, headers, body, status):
    with Client(reporter, **settings) as client:
        assert client.post(target, headers=headers, body=body).status == status


def test_rootserve_reads_a_chunked_body():
    chunks = b"4\r\nping\r\n5\r\n pong\r\n0\r\n\r\n"
    with Client(reporter) as client:
        response = client.post("/", headers=CHUNKED, body=chunks)
    assert response.text.startswith("POST b'ping pong'")


@pytest.mark.parametrize(
    "headers",
    [
        [("Accept ", "text/plain")],  # whitespace before the colon (RFC 9112, section 5.1)
        [("Content-Length", "4"), ("Content-Length", "5")],
        [("Content-Length", "4"), ("Transfer-Encoding", "chunked")],
    ],
    ids=["space-before-colon", "two-lengths", "length-and-chunked"],
)
def test_rootserve_refuses_what_the_chapter_3_server_accepted(headers):
    with Client(reporter) as client:
        assert client.post("/", headers=headers, body=b"ping").status == 400


def test_rootserve_answers_500_when_the_app_fails_before_answering():
    with Client(failing) as client:
        response = client.get("/")
        assert response.status == 500
        assert client.errors  # and the app's exception is logged


def test_rootserve_joins_repeated_fields_for_a_wsgi_app():
    with Client(reporter) as client:
        response = client.get("/", headers=[("Accept", "text/plain"), ("Accept", "text/html")])
    assert "accept='text/plain,text/html'" in response.text
