"""The PEP 3333 environ, built from the protocol's `Request` event, in memory.

Raw request bytes go through `HTTP11Connection.receive_data`, as on a connection; the
`Request` it gives goes to `build_environ`. Every environ built here also passes the
environ check of wsgiref's validator.
"""

from __future__ import annotations

import wsgiref.validate
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rootserve.protocol.events import Request
from rootserve.protocol.http11 import HTTP11Connection
from rootserve.wsgi.adapter import FileWrapper
from rootserve.wsgi.environ import base_environ, build_environ
from rootserve.wsgi.input import EMPTY_INPUT

SERVER = ("127.0.0.1", 8000)
CLIENT = ("10.1.2.3", 54321)


def parse(raw: bytes) -> Request:
    events = HTTP11Connection().receive_data(raw)
    assert events and isinstance(events[0], Request), events
    return events[0]


def environ_for(
    raw: bytes,
    *,
    root_path: str = "",
    multiprocess: bool = False,
    server: tuple[str, int] | None = SERVER,
    client: tuple[str, int] | None = CLIENT,
) -> dict[str, Any]:
    base = base_environ(
        root_path=root_path, scheme="http", multiprocess=multiprocess, file_wrapper=FileWrapper
    )
    environ = build_environ(base, parse(raw), server, client, EMPTY_INPUT)
    wsgiref.validate.check_environ(environ)
    return environ


def get(target: str, *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: example.org", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def test_every_required_key():
    environ = environ_for(
        get("/p/q?x=1", "Content-Type: text/plain", "Content-Length: 0", method="POST")
    )
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/p/q"
    assert environ["QUERY_STRING"] == "x=1"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "0"
    assert environ["SERVER_NAME"] == "127.0.0.1"
    assert environ["SERVER_PORT"] == "8000"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REMOTE_ADDR"] == "10.1.2.3"
    assert environ["REMOTE_PORT"] == "54321"
    assert environ["HTTP_HOST"] == "example.org"
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.input"] is EMPTY_INPUT
    assert hasattr(environ["wsgi.errors"], "write")
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is False
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True
    assert environ["wsgi.file_wrapper"] is FileWrapper
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ


def test_no_query_string_is_an_empty_one():
    environ = environ_for(get("/"))
    assert environ["QUERY_STRING"] == ""
    assert "CONTENT_TYPE" not in environ and "CONTENT_LENGTH" not in environ


@pytest.mark.parametrize(
    ("target", "path_info"),
    [
        ("/caf%C3%A9", "/caf\xc3\xa9"),  # UTF-8 bytes, each as one latin-1 character
        ("/caf%c3%a9", "/caf\xc3\xa9"),  # lower-case hex digits
        ("/a%2Fb", "/a/b"),  # CGI: PATH_INFO is decoded, %2F included
        ("/100%25", "/100%"),
        ("/sp%20ace", "/sp ace"),
        ("/a+b", "/a+b"),  # "+" means a space only in a form query
        ("/%FF%00", "/\xff\x00"),  # not UTF-8: still each byte as latin-1
        ("/%zz", "/%zz"),  # not a percent-encoding: left alone
        ("/%E2%98%83/x?q=%E2%98%83", "/\xe2\x98\x83/x"),
    ],
)
def test_path_info_is_percent_decoded_bytes_as_latin1(target: str, path_info: str):
    environ = environ_for(get(target))
    assert environ["PATH_INFO"] == path_info


def test_unicode_path_round_trips_through_latin1():
    environ = environ_for(get("/" + quote_from_bytes("snow ☃/ü".encode())))
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/snow ☃/ü"


def test_query_string_is_left_encoded():
    environ = environ_for(get("/search?q=caf%C3%A9+au+lait&x=%2F&empty="))
    assert environ["QUERY_STRING"] == "q=caf%C3%A9+au+lait&x=%2F&empty="


@settings(database=None, deadline=None)
@given(st.binary(max_size=64))
def test_any_path_bytes_reach_path_info(data: bytes):
    target = "/" + quote_from_bytes(data, safe="")
    environ = environ_for(get(target))
    assert environ["PATH_INFO"].encode("latin-1") == b"/" + data


def test_root_path_is_script_name_and_the_path_is_left_whole():
    environ = environ_for(get("/items/7?x=1"), root_path="/mount")
    assert environ["SCRIPT_NAME"] == "/mount"
    assert environ["PATH_INFO"] == "/items/7"


def test_repeated_headers_are_joined_with_commas_in_order():
    environ = environ_for(
        get("/", "Accept: text/html", "X-Tag: a", "Accept: application/json", "X-TAG:  b  ")
    )
    assert environ["HTTP_ACCEPT"] == "text/html,application/json"
    assert environ["HTTP_X_TAG"] == "a,b"  # OWS around a value is not part of it


def test_header_names_with_underscores_are_dropped():
    """`X_Forwarded_For` would become HTTP_X_FORWARDED_FOR, as a proxy's X-Forwarded-For
    does: dropping it keeps a client from spoofing what the proxy says."""
    environ = environ_for(
        get(
            "/",
            "X-Forwarded-For: 10.0.0.1",
            "X_Forwarded_For: 6.6.6.6",
            "Content_Type: text/evil",
            "X_Only: 1",
        )
    )
    assert environ["HTTP_X_FORWARDED_FOR"] == "10.0.0.1"
    assert "CONTENT_TYPE" not in environ
    assert not [key for key in environ if "ONLY" in key]


def test_header_values_are_latin1_text():
    raw = get("/", "X-Name: caf\xe9")  # obs-text (RFC 9110 section 5.5)
    environ = environ_for(raw)
    assert environ["HTTP_X_NAME"] == "caf\xe9"


def test_many_distinct_header_names():
    """Header names seen before are cached; past the cache's size they still map."""
    for n in range(1100):
        environ = environ_for(get("/", f"X-Name-{n}: {n}"))
        assert environ[f"HTTP_X_NAME_{n}"] == str(n)


def test_absolute_form_target():
    """RFC 9112 section 3.2.2: the host comes from the target's authority."""
    environ = environ_for(b"GET http://other.example:8080/p?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert environ["PATH_INFO"] == "/p"
    assert environ["QUERY_STRING"] == "q=1"
    assert environ["HTTP_HOST"] == "other.example:8080"


def test_http10_without_host():
    environ = environ_for(b"GET /old HTTP/1.0\r\n\r\n")
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "HTTP_HOST" not in environ


def test_chunked_request_has_no_content_length():
    raw = get("/up", "Transfer-Encoding: chunked", method="PUT") + b"0\r\n\r\n"
    environ = environ_for(raw)
    assert "CONTENT_LENGTH" not in environ
    assert environ["HTTP_TRANSFER_ENCODING"] == "chunked"


def test_unknown_addresses_still_give_strings():
    environ = environ_for(get("/"), server=None, client=None)
    for key in ("SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR"):
        assert type(environ[key]) is str


def test_multiprocess_flag():
    assert environ_for(get("/"), multiprocess=True)["wsgi.multiprocess"] is True


def test_each_request_gets_its_own_environ():
    base = base_environ(root_path="", scheme="http", multiprocess=False, file_wrapper=FileWrapper)
    first = build_environ(base, parse(get("/a", "X-A: 1")), SERVER, CLIENT, EMPTY_INPUT)
    first["PATH_INFO"] = "/changed"
    first["wsgi.url_scheme"] = "https"
    second = build_environ(base, parse(get("/b")), SERVER, CLIENT, EMPTY_INPUT)
    assert second["PATH_INFO"] == "/b"
    assert second["wsgi.url_scheme"] == "http"
    assert "HTTP_X_A" not in second and "HTTP_X_A" not in base
