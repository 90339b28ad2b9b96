"""The chapter-3 server: it keeps the WSGI contract, stays small, and does what the page says."""

import ast
import http.client
import io
import itertools
import re
import socket
import threading
from contextlib import contextmanager
from wsgiref.validate import validator

import ch2_app
import ch2_flask
import ch3_errors
import ch3_middleware
import ch3_server
import ch3_streaming
import pytest
from ch2_demo import REQUESTS
from guide_support import EXAMPLES, GUIDE, OUTPUT, normalise, run_example


@contextmanager
def serving(app, connections):
    """Run ch3_server.serve_one `connections` times in a thread; yield the port."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        errors = []

        def serve():
            try:
                for _ in range(connections):
                    ch3_server.serve_one(listener, app)
            except Exception as exc:  # reported by the test below, not lost in the thread
                errors.append(exc)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            yield listener.getsockname()[1]
        finally:
            thread.join(timeout=15)
        assert not thread.is_alive()
        assert errors == []


def raw_exchange(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(request)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    return received


def test_serves_the_chapter_2_app_under_the_validator(capsys):
    # The validator sits between the server and the app, so it checks the environ the
    # server builds and the start_response and write() it offers, as well as the app.
    with serving(validator(ch2_app.app), len(REQUESTS)) as port:
        statuses = []
        for method, target, body in REQUESTS:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request(method, target, body=body)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            assert response.getheader("Connection") == "close"
            assert response.getheader("Date")
            connection.close()
    assert statuses == [200, 200, 200, 404, 405]
    assert capsys.readouterr().err == ""  # no traceback: nothing went wrong on the server


def test_a_body_without_content_length_ends_when_the_connection_closes():
    # RFC 9112, section 6.3, rule 8: the response body then runs until the server closes.
    with serving(ch3_middleware.where, 1) as port:
        received = raw_exchange(port, b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"content-length" not in head.lower()
    assert body == b"SCRIPT_NAME='' PATH_INFO='/x'\n"


def test_malformed_input_closes_the_connection_and_the_server_goes_on(capsys):
    with serving(ch2_app.app, 2) as port:
        assert raw_exchange(port, b"NONSENSE\r\n\r\n") == b""
        received = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert "ValueError" in capsys.readouterr().err  # the traceback the server printed


def test_the_server_calls_close_on_the_body():
    closed = []

    class Body:
        def __iter__(self):
            yield b"one "
            yield b"two\n"

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    with serving(app, 1) as port:
        received = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert received.endswith(b"\r\n\r\none two\n")
    assert closed == [True]


def test_environ_follows_pep_3333():
    conn = socket.socket()
    try:
        conn.bind(("127.0.0.1", 0))
        request = b"POST /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
        request += b"Content-Length: 3\r\nX-Thing: 1\r\n\r\nabcEXTRA"
        environ = ch3_server.make_environ(conn, *ch3_server.read_request(io.BytesIO(request)))
    finally:
        conn.close()
    assert environ["PATH_INFO"] == "/a b"
    assert environ["QUERY_STRING"] == "x=1"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "3"
    assert environ["HTTP_X_THING"] == "1"
    assert "HTTP_CONTENT_LENGTH" not in environ
    assert environ["wsgi.input"].read(10) == b"abc"


def code_lines(path):
    """Lines that hold code: not blank, not only a comment, not part of a docstring."""
    source = path.read_text(encoding="utf-8")
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        value = getattr(first, "value", None) if isinstance(first, ast.Expr) else None
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            docstrings.update(range(first.lineno, first.end_lineno + 1))
    return [
        line
        for number, line in enumerate(source.splitlines(), start=1)
        if line.strip() and not line.strip().startswith("#") and number not in docstrings
    ]


def test_the_server_is_small_enough_to_read_in_one_sitting():
    # Chapter 3 promises fewer than 80 lines of code.
    assert len(code_lines(EXAMPLES / "ch3_server.py")) < 80


@pytest.mark.parametrize(
    "gap",
    [
        "keep-alive",
        "timeouts",
        "limits",
        "HEAD",
        "100-continue",
        "chunked",
        "concurrency",
        "malformed",
    ],
)
def test_chapter_3_names_what_the_server_leaves_out(gap):
    page = (GUIDE / "03-the-wsgi-server-and-middleware.md").read_text(encoding="utf-8")
    section = page.split("## What this server leaves out", 1)[1].split("\n## ", 1)[0]
    assert gap.lower() in section.lower()


# -- streaming, error pages and Flask, served by the chapter-3 server
ARRIVAL = re.compile(r"^after (\d+\.\d\d) s: (b'.*')$", re.MULTILINE)


def check_arrivals(text, least_gap):
    """Four parts, in order, each arriving at least `least_gap` seconds after the one before."""
    arrivals = [(float(seconds), ast.literal_eval(data)) for seconds, data in ARRIVAL.findall(text)]
    assert [data for _, data in arrivals] == [b"3...\n", b"2...\n", b"1...\n", b"liftoff\n"]
    times = [seconds for seconds, _ in arrivals]
    assert times[0] < ch3_streaming.PAUSE  # the first part does not wait for the others
    for earlier, later in itertools.pairwise(times):
        assert later - earlier >= least_gap, times


def test_the_recorded_streaming_run_shows_the_parts_a_pause_apart():
    recorded = (OUTPUT / "ch3_streaming.txt").read_text(encoding="utf-8")
    check_arrivals(recorded, ch3_streaming.PAUSE - 0.01)  # two decimals round the seconds


def test_a_live_streaming_run_sends_each_part_when_it_is_yielded():
    printed = run_example("ch3_streaming.py")
    expected = (OUTPUT / "ch3_streaming.txt").read_text(encoding="utf-8")
    assert normalise(printed) == normalise(expected)
    check_arrivals(printed, ch3_streaming.PAUSE * 0.9)  # sleep may end a little early on some OSes


def test_an_error_before_the_head_becomes_a_500_page(capsys):
    with serving(ch3_errors.app, 1) as port:
        received = raw_exchange(port, b"GET /fails-at-once HTTP/1.1\r\nHost: t\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert received.endswith(b"\r\n\r\nSomething went wrong on our side.\n")
    assert capsys.readouterr().err == ""  # the middleware handled it; the server logs nothing


def test_an_error_after_the_head_is_raised_again_by_start_response(capsys):
    # The branch of ch3_server's start_response that re-raises: the head and the first part
    # are out, so the middleware's 500 cannot be sent; the error reaches serve_one, which logs
    # it, and the client sees the connection close after the first part.
    with serving(ch3_errors.app, 1) as port:
        received = raw_exchange(port, b"GET /fails-half-way HTTP/1.1\r\nHost: t\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b"\r\n\r\nReport, part 1 of 2\n")
    log = capsys.readouterr().err
    assert "in start_response\n    raise exc_info[1].with_traceback(exc_info[2])" in log
    assert log.rstrip().endswith("RuntimeError: the data went away half way")


def test_flask_runs_on_the_chapter_3_server_under_the_validator(capsys):
    requests = REQUESTS[:3]
    with serving(validator(ch2_flask.app), len(requests)) as port:
        for method, target, body in requests:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request(method, target, body=body)
            response = connection.getresponse()
            assert response.status == 200
            assert response.read()
            connection.close()
    assert capsys.readouterr().err == ""
