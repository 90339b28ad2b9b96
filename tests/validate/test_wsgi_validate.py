"""validate.wsgi: each PEP 3333 rule it checks, broken by a tiny app, raises its exact message;
Flask and Django apps pass through unchanged; a wrapped app still serves as WSGI.

Rule tests call the wrapped app directly with a valid environ and a recording
start_response, playing the server: iterate the body, then close() it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import httpx
import pytest
from tests.apps.wsgi import STATIC, flask_app
from tests.wsgi.support import serve_wsgi

from rootserve.loading import detect_interface
from rootserve.validate._errors import ContractError
from rootserve.validate._wsgi import wsgi
from rootserve.wsgi.call import FileWrapper

App = Callable[[dict[str, Any], Any], Iterable[bytes]]
START = 'PEP 3333, "The start_response() Callable"'


def make_environ(**extra: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ["wsgi.file_wrapper"] = FileWrapper
    environ.update(extra)
    return environ


class Recorder:
    """The server's start_response: records the head, re-raises exc_info once body bytes
    have gone out (as PEP 3333 asks a server to), and collects write() calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []
        self.body: list[bytes] = []

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None and self.body:
            raise exc_info[1].with_traceback(exc_info[2])
        self.calls.append((status, headers))
        return self.body.append


def run(app: App, environ: dict[str, Any] | None = None) -> tuple[Recorder, bytes]:
    """Play the server: call `app`, iterate, close; the heads it was given and the body."""
    recorder = Recorder()
    result = app(make_environ() if environ is None else environ, recorder)
    try:
        for chunk in result:
            recorder.body.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return recorder, b"".join(recorder.body)


def broken(app: App, message: str, environ: dict[str, Any] | None = None) -> None:
    with pytest.raises(ContractError) as caught:
        run(wsgi(app), environ)
    assert str(caught.value) == message


def ok_headers() -> list[tuple[str, str]]:
    return [("Content-Type", "text/plain")]


# --- server-side rules: the environ and the call --------------------------------------------


ENVIRON = 'PEP 3333, "environ Variables"'
ENVIRON_CASES = [
    ("REQUEST_METHOD", None, "environ lacks the required key 'REQUEST_METHOD'"),
    ("wsgi.version", (1, 1), "environ['wsgi.version'] is (1, 1), not (1, 0)"),
    ("wsgi.version", [1, 0], "environ['wsgi.version'] is [1, 0], not (1, 0)"),
    ("wsgi.url_scheme", "ftp", "environ['wsgi.url_scheme'] is 'ftp', not 'http' or 'https'"),
    ("PATH_INFO", "x", "environ['PATH_INFO'] is 'x', which lacks a leading '/'"),
    ("SCRIPT_NAME", "/", "environ['SCRIPT_NAME'] is '/'; an app at the root has SCRIPT_NAME ''"),
    (
        "HTTP_CONTENT_LENGTH",
        "3",
        "environ has 'HTTP_CONTENT_LENGTH'; the request's header belongs in 'CONTENT_LENGTH'",
    ),
    ("SERVER_PORT", 80, "environ['SERVER_PORT'] is a int, not a str"),
    ("CONTENT_LENGTH", "-1", "environ['CONTENT_LENGTH'] is '-1', not a decimal number"),
    ("CONTENT_LENGTH", "\u00b2", "environ['CONTENT_LENGTH'] is '\u00b2', not a decimal number"),
]


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", ok_headers())
    return [b"hello"]


@pytest.mark.parametrize(("key", "value", "what"), ENVIRON_CASES)
def test_server_environ_rules(key: str, value: Any, what: str):
    environ = make_environ()
    if value is None:
        del environ[key]
    else:
        environ[key] = value
    broken(hello, f"WSGI server: {what} ({ENVIRON})", environ)


def test_server_streams_have_their_methods():
    message = (
        "WSGI server: environ['wsgi.input'] lacks read(), readline(), readlines(), __iter__() "
        '(PEP 3333, "Input and Error Streams")'
    )
    broken(hello, message, make_environ(**{"wsgi.input": object()}))


def test_server_environ_must_be_a_dict():
    with pytest.raises(ContractError) as caught:
        wsgi(hello)(list(make_environ().items()), Recorder())  # type: ignore[arg-type]
    message = 'WSGI server: environ is a list, not a dict (PEP 3333, "Specification Details")'
    assert str(caught.value) == message


def test_server_start_response_must_be_callable():
    with pytest.raises(ContractError) as caught:
        wsgi(hello)(make_environ(), "start_response")
    message = 'WSGI server: start_response is not callable (PEP 3333, "Specification Details")'
    assert str(caught.value) == message


def test_server_must_reraise_exc_info_after_the_headers_went_out():
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", ok_headers())
        write(b"partial")
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Internal Server Error", ok_headers(), sys.exc_info())
        return []

    def lax_server(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        return lambda data: None

    with pytest.raises(ContractError) as caught:
        wsgi(app)(make_environ(), lax_server)
    assert str(caught.value) == (
        "WSGI server: start_response() with exc_info after the headers were sent did not "
        f"re-raise ({START})"
    )


def test_the_wrapper_takes_exactly_two_positional_arguments():
    wrapped = wsgi(hello)
    assert detect_interface(wrapped) == "wsgi"
    with pytest.raises(TypeError):
        wrapped(make_environ(), Recorder(), None)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        wrapped(environ=make_environ(), start_response=Recorder())  # type: ignore[call-arg]


# --- app-side rules: start_response -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (b"200 OK", f"WSGI: the status is a bytes, not a str ({START})"),
        (200, f"WSGI: the status is a int, not a str ({START})"),
    ],
)
def test_status_must_be_a_str(status: Any, message: str):
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, ok_headers())
        return [b""]

    broken(app, message)


@pytest.mark.parametrize(
    "status", ["200", "200OK", "20 OK", "2000 OK", "200 ", " 200 OK", "200 OK\r\n"]
)
def test_status_must_be_three_digits_a_space_and_a_reason(status: str):
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, ok_headers())
        return [b""]

    message = (
        f"WSGI: the status {status!r} is not three digits, a space and a reason phrase ({START})"
    )
    broken(app, message)


def header_app(headers: Any) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", headers)
        return [b""]

    return app


def test_headers_must_be_a_list():
    broken(header_app(tuple(ok_headers())), f"WSGI: the headers are a tuple, not a list ({START})")


@pytest.mark.parametrize("item", [["X-A", "1"], ("X-A",), ("X-A", 1), (b"X-A", b"1")])
def test_each_header_is_a_str_pair_tuple(item: Any):
    message = f"WSGI: the header {item!r} is not a (str, str) tuple ({START})"
    broken(header_app([item]), message)


@pytest.mark.parametrize("name", ["X A", "X-A:", "", "Caf\u00e9", "X\nA"])
def test_header_names_are_tokens(name: str):
    message = f"WSGI: the header name {name!r} is not an HTTP token ({START})"
    broken(header_app([(name, "1")]), message)


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: x=1", "a\x00b", "a\x7f"])
def test_header_values_hold_no_control_characters(value: str):
    message = f"WSGI: the value of header 'X-A' holds a control character: {value!r} ({START})"
    broken(header_app([("X-A", value)]), message)


@pytest.mark.parametrize("name", ["Connection", "keep-alive", "Transfer-Encoding", "Upgrade", "TE"])
def test_no_hop_by_hop_headers(name: str):
    message = f"WSGI: the app set the hop-by-hop header {name!r}; only the server may ({START})"
    broken(header_app([(name, "close")]), message)


def test_start_response_twice_without_exc_info():
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", ok_headers())
        start_response("500 Internal Server Error", ok_headers())
        return [b""]

    message = f"WSGI: start_response() called a second time without exc_info ({START})"
    broken(app, message)


def test_exc_info_must_be_an_exc_info_tuple():
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("500 Internal Server Error", ok_headers(), ValueError("x"))
        return [b""]

    broken(app, f"WSGI: exc_info is ValueError('x'), not a sys.exc_info() tuple ({START})")


def test_exc_info_before_the_headers_went_out_replaces_them():
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", ok_headers())
        try:
            raise ValueError("early")
        except ValueError:
            start_response("500 Internal Server Error", ok_headers(), sys.exc_info())
        return [b"failed"]

    recorder, body = run(wsgi(app))
    assert [status for status, _ in recorder.calls] == ["200 OK", "500 Internal Server Error"]
    assert body == b"failed"


def trapping(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    write = start_response("200 OK", ok_headers())
    write(b"partial")
    try:
        raise ValueError("late")
    except ValueError:
        # The broken part: PEP 3333 says to let the re-raised exception through.
        with contextlib.suppress(ValueError):
            start_response("500 Internal Server Error", ok_headers(), sys.exc_info())
    return []


def trapping_generator(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", ok_headers())
    yield b"partial"
    try:
        raise ValueError("late")
    except ValueError:
        with contextlib.suppress(ValueError):
            start_response("500 Internal Server Error", ok_headers(), sys.exc_info())
    yield b"more"


@pytest.mark.parametrize("app", [trapping, trapping_generator])
def test_the_app_must_not_trap_the_reraised_exc_info(app: App):

    message = (
        "WSGI: the app went on normally after start_response() re-raised its exc_info; it must "
        'not trap that exception (PEP 3333, "Error Handling")'
    )
    broken(app, message)


def test_the_reraised_exc_info_reaches_the_server():
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", ok_headers())
        write(b"partial")
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Internal Server Error", ok_headers(), sys.exc_info())
        return []

    with pytest.raises(ValueError, match="late"):
        run(wsgi(app))


# --- app-side rules: the body ------------------------------------------------------------------


def test_returning_a_str():
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", ok_headers())
        return "hello"

    broken(
        app, 'WSGI: the app returned a str, not an iterable of bytes (PEP 3333, "Unicode Issues")'
    )


def test_returning_bare_bytes():
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", ok_headers())
        return b"hello"

    message = (
        "WSGI: the app returned a bare bytes (an iterable of ints), not an iterable of bytes "
        'such as [body] (PEP 3333, "Specification Details")'
    )
    broken(app, message)


@pytest.mark.parametrize(
    ("chunk", "section"),
    [("text", "Unicode Issues"), (bytearray(b"x"), "Specification Details")],
)
def test_the_iterable_yields_bytes(chunk: Any, section: str):
    def app(environ: dict[str, Any], start_response: Any) -> list[Any]:
        start_response("200 OK", ok_headers())
        return [chunk]

    kind = type(chunk).__name__
    broken(app, f'WSGI: the body iterable yielded a {kind}, not bytes (PEP 3333, "{section}")')


def test_body_bytes_before_start_response():
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        yield b""  # allowed: an empty chunk sends nothing
        yield b"early"
        start_response("200 OK", ok_headers())

    broken(app, f"WSGI: body bytes came before start_response() was called ({START})")


def test_the_response_ends_without_start_response():
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return []

    broken(app, f"WSGI: the response ended without start_response() being called ({START})")


def test_a_file_wrapper_returned_before_start_response():
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return environ["wsgi.file_wrapper"](io.BytesIO(b"data"))

    broken(app, f"WSGI: the response ended without start_response() being called ({START})")


WRITE = 'PEP 3333, "The write() Callable"'


def test_write_takes_bytes():
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", ok_headers())
        write("text")
        return []

    broken(app, f"WSGI: write() given a str, not bytes ({WRITE})")


@pytest.mark.parametrize("use_write", [False, True])
def test_no_more_body_than_the_content_length(use_write: bool):
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [*ok_headers(), ("Content-Length", "5")])
        if use_write:
            write(b"abc")
            return [b"def"]
        return [b"abc", b"def"]

    message = (
        "WSGI: the body is longer than the Content-Length 5 the app set (6 bytes so far) "
        '(PEP 3333, "Handling the Content-Length Header")'
    )
    broken(app, message)


def test_wsgi_errors_takes_text():
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.errors"].write(b"oops\n")
        start_response("200 OK", ok_headers())
        return []

    message = (
        'WSGI: wsgi.errors.write() given a bytes, not a str (PEP 3333, "Input and Error Streams")'
    )
    broken(app, message)


def test_close_reaches_the_apps_iterable():
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"a"
            yield b"b"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", ok_headers())
        return Body()

    recorder, body = run(wsgi(app))
    assert (recorder.calls, body, closed) == ([("200 OK", ok_headers())], b"ab", [True])


def test_a_file_wrapper_passes_through_unwrapped():
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", ok_headers())
        return environ["wsgi.file_wrapper"](io.BytesIO(b"data"))

    result = wsgi(app)(make_environ(), Recorder())
    assert type(result) is FileWrapper
    assert b"".join(result) == b"data"
    result.close()  # type: ignore[attr-defined]


# --- no false alarms: Flask and Django ------------------------------------------------------


def test_flask_through_werkzeugs_test_client():
    from werkzeug.test import Client

    client = Client(wsgi(flask_app.app))
    assert client.get("/").get_data() == b"hello from flask"
    user = client.get("/users/caf%C3%A9?q=a+b")
    assert user.json == {"name": "café", "q": "a b", "url": "/users/caf%C3%A9"}
    created = client.post("/items", json={"name": "x"})
    assert (created.status_code, created.json) == (201, {"created": "x", "fields": ["name"]})
    assert client.get("/stream?n=2").get_data() == b"line 0 of /stream\nline 1 of /stream\n"
    assert client.get("/nowhere").status_code == 404
    assert client.get("/teapot").status_code == 418
    assert client.get("/hello.txt", buffered=True).get_data() == (STATIC / "hello.txt").read_bytes()


def test_flask_file_response_keeps_the_servers_file_wrapper():
    environ = make_environ(PATH_INFO="/hello.txt")
    recorder = Recorder()
    result = wsgi(flask_app.app)(environ, recorder)
    try:
        assert type(result) is FileWrapper
        assert recorder.calls[0][0] == "200 OK"
        assert b"".join(result) == (STATIC / "hello.txt").read_bytes()
    finally:
        result.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def django_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    db = tmp_path_factory.mktemp("django") / "db.sqlite3"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_SETTINGS_MODULE", "tests.apps.wsgi.django_project.settings")
        patch.setenv("DJANGO_TEST_DB", os.fspath(db))
        from django.core.management import call_command
        from tests.apps.wsgi.django_project.wsgi import application

        call_command("migrate", verbosity=0, interactive=False)
        yield application


def test_django_directly_with_an_environ(django_app: App):
    validated = wsgi(django_app)
    _, body = run(django_app, make_environ(PATH_INFO="/hello/x/"))
    _, checked = run(validated, make_environ(PATH_INFO="/hello/x/"))
    assert checked == body
    assert json.loads(checked)["greeting"] == "Hello, x!"
    missing, _ = run(validated, make_environ(PATH_INFO="/no/such/page/"))
    assert missing.calls[0][0] == "404 Not Found"
    result = validated(make_environ(PATH_INFO="/file/"), Recorder())
    try:
        assert type(result) is FileWrapper
        assert b"".join(result) == (STATIC / "hello.txt").read_bytes()
    finally:
        result.close()  # type: ignore[attr-defined]


# --- end to end ---------------------------------------------------------------------------------


def test_a_correct_app_served_through_the_validator_answers_normally():
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
        yield b"hello "
        yield b"world"

    wrapped = wsgi(app)
    # What the CLI's interface detection would pick, then served the way it serves WSGI
    # (tests.helpers.serve always serves ASGI).
    assert detect_interface(wrapped) == "wsgi"
    with serve_wsgi(wrapped) as served, httpx.Client(timeout=5) as client:
        answer = client.get(served.url)
    assert (answer.status_code, answer.text) == (200, "hello world")


def test_flask_served_through_the_validator():
    with serve_wsgi(wsgi(flask_app.app)) as served, httpx.Client(timeout=5) as client:
        assert client.get(f"{served.url}/").text == "hello from flask"
        streamed = client.get(f"{served.url}/stream", params={"n": "2"})
        assert streamed.text == "line 0 of /stream\nline 1 of /stream\n"
        assert client.get(f"{served.url}/hello.txt").content == (STATIC / "hello.txt").read_bytes()
        assert client.get(f"{served.url}/nowhere").status_code == 404
