"""Every WSGI app in the guide passes wsgiref.validate.validator, for each request it is sent."""

from wsgiref.validate import WSGIWarning

import ch1_ex1
import ch1_ex2
import ch1_ex3
import ch1_smallest
import ch2_app
import ch2_ex1
import ch2_ex2
import ch2_ex3
import ch2_flask
import ch2_hello
import ch3_errors
import ch3_ex1
import ch3_ex2
import ch3_middleware
import ch3_stack
import ch3_streaming
import ch3_validate
import ch4_crowd
import ch4_ex1
import ch4_measure
import pytest
from guide_support import call_validated

JSON = "application/json"

# (app, method, target, body, content type, expected status)
CASES = [
    (ch1_smallest.app, "GET", "/", b"", None, "200 OK"),
    (ch2_hello.app, "GET", "/hello?name=Ada", b"", None, "200 OK"),
    (ch2_app.app, "GET", "/", b"", None, "200 OK"),
    (ch2_app.app, "GET", "/greet?name=Ada%20Lovelace", b"", None, "200 OK"),
    (ch2_app.app, "POST", "/echo", b"ping", "text/plain", "200 OK"),
    (ch2_app.app, "POST", "/echo", b"", None, "200 OK"),
    (ch2_app.app, "GET", "/missing", b"", None, "404 Not Found"),
    (ch2_app.app, "DELETE", "/greet", b"", None, "405 Method Not Allowed"),
    (ch2_flask.app, "GET", "/greet?name=Ada", b"", None, "200 OK"),
    (ch2_flask.app, "POST", "/echo", b"ping", "text/plain", "200 OK"),
    (ch2_flask.app, "GET", "/missing", b"", None, "404 NOT FOUND"),
    (ch2_flask.app, "DELETE", "/greet", b"", None, "405 METHOD NOT ALLOWED"),
    (ch2_flask.app, "HEAD", "/greet", b"", None, "200 OK"),
    (ch3_middleware.timing(ch2_app.app), "GET", "/", b"", None, "200 OK"),
    (ch3_middleware.mount(ch3_middleware.where, "/a"), "GET", "/a/b", b"", None, "200 OK"),
    (ch3_middleware.mount(ch3_middleware.where, "/a"), "GET", "/a", b"", None, "200 OK"),
    (ch3_middleware.mount(ch3_middleware.where, "/a"), "GET", "/ab", b"", None, "404 Not Found"),
    (ch3_stack.app, "GET", "/shop/greet?name=Ada", b"", None, "200 OK"),
    (ch3_stack.app, "GET", "/where/x", b"", None, "200 OK"),
    (ch3_validate.correct, "GET", "/", b"", None, "200 OK"),
    (ch4_measure.slow_wsgi_app, "GET", "/slow", b"", None, "200 OK"),
    (ch1_ex1.app, "GET", "/Ada", b"", None, "200 OK"),
    (ch1_ex1.app, "GET", "/", b"", None, "404 Not Found"),
    (ch1_ex2.body_fixed, "GET", "/", b"", None, "200 OK"),
    (ch1_ex3.app, "GET", "/", b"", None, "200 OK"),
    (ch2_ex1.app, "GET", "/add?a=2&b=3", b"", None, "200 OK"),
    (ch2_ex1.app, "GET", "/add?a=2", b"", None, "400 Bad Request"),
    (ch2_ex2.app, "POST", "/sum", b"[1, 2]", JSON, "200 OK"),
    (ch2_ex2.app, "POST", "/sum", b"[1, 2]", "text/plain", "415 Unsupported Media Type"),
    (ch2_ex2.app, "POST", "/sum", b"[1,", JSON, "400 Bad Request"),
    (ch2_ex3.app, "GET", "/caf\xc3\xa9", b"", None, "200 OK"),
    (ch3_ex1.head_as_get(ch3_ex1.only_get), "HEAD", "/", b"", None, "200 OK"),
    (ch3_ex1.head_as_get(ch3_ex1.only_get), "GET", "/", b"", None, "200 OK"),
    (ch3_ex2.limit_body(ch3_ex2.count_bytes, 4), "POST", "/", b"abcd", None, "200 OK"),
    (
        ch3_ex2.limit_body(ch3_ex2.count_bytes, 4),
        "POST",
        "/",
        b"abcde",
        None,
        "413 Content Too Large",
    ),
    (ch4_ex1.app, "GET", "/", b"", None, "200 OK"),
    (ch3_streaming.countdown, "GET", "/", b"", None, "200 OK"),
    (ch3_errors.error_page(ch2_app.app), "GET", "/", b"", None, "200 OK"),
    (ch3_errors.app, "GET", "/fails-at-once", b"", None, "500 Internal Server Error"),
    (ch4_crowd.slow_wsgi_app, "GET", "/slow", b"", None, "200 OK"),
]


def case_id(case):
    app, method, target, *_ = case
    name = getattr(app, "__qualname__", type(app).__name__)
    return f"{app.__module__}.{name}:{method} {target}"


@pytest.mark.parametrize(
    ("app", "method", "target", "body", "content_type", "status"), CASES, ids=map(case_id, CASES)
)
def test_app_passes_the_validator(app, method, target, body, content_type, status):
    got_status, _, _ = call_validated(app, method, target, body, content_type)
    assert got_status == status


@pytest.mark.parametrize(
    "broken",
    [
        ch3_validate.returns_a_str,
        ch3_validate.int_header,
        ch3_validate.no_content_type,
        ch1_ex2.status_fixed,
        ch1_ex2.header_fixed,
    ],
)
def test_the_validator_catches_the_broken_apps(broken):
    with pytest.raises(AssertionError):
        call_validated(broken)


def test_the_status_without_a_reason_phrase_is_a_warning_made_an_error():
    with pytest.raises(WSGIWarning):
        call_validated(ch1_ex2.broken_app)


def test_head_middleware_keeps_the_fields_and_drops_the_content():
    app = ch3_ex1.head_as_get(ch3_ex1.only_get)
    get_status, get_headers, get_body = call_validated(app, "GET")
    head_status, head_headers, head_body = call_validated(app, "HEAD")
    assert (head_status, head_headers) == (get_status, get_headers)
    assert get_body and head_body == b""


def test_mount_moves_the_prefix_to_script_name():
    _, _, body = call_validated(
        ch3_middleware.mount(ch3_middleware.where, "/shop"), "GET", "/shop/x"
    )
    assert body == b"SCRIPT_NAME='/shop' PATH_INFO='/x'\n"


def test_timing_adds_one_server_timing_field():
    _, headers, _ = call_validated(ch3_middleware.timing(ch2_app.app), "GET", "/")
    assert headers["Server-Timing"].startswith("app;dur=")
