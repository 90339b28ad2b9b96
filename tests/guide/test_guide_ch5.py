"""Chapter 5: the outputs of the demos that run real servers, and what the ASGI apps do.

The demos that start uvicorn or rootserve print parts that change from run to run beyond
what `normalise` masks: process ids, rootserve's access-log dates, a trace's times and the
ports in a scope's `server` and `client` tuples. `masked` hides those too, on both sides.
The other tests call the chapter's apps directly and through rootserve's test client, where
the contract validator checks every message.
"""

import asyncio
import re

import ch5_app
import ch5_ex1
import ch5_ex2
import ch5_strict
import ch5_wsgi_inside
import pytest
from ch5_frameworks import fastapi_app, starlette_app
from guide_support import OUTPUT, normalise, run_example

from rootserve.testing import Client, WebSocketRejected

MASKS = [
    (re.compile(r"server process \[\d+\]"), "server process [PID]"),  # uvicorn's log
    (re.compile(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]"), "[DATE]"),  # access log
    (re.compile(r"^ *\d+\.\d{3} ms", re.MULTILINE), "        T ms"),  # trace times
    (re.compile(r"\('127\.0\.0\.1', \d+\)"), "('127.0.0.1', PORT)"),  # scope server/client
]


def masked(text):
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return normalise(text)


def shown(name):
    return (OUTPUT / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("script", "output"),
    [
        ("ch5_servers.py", "ch5_servers.txt"),
        ("ch5_trace.py", "ch5_trace.txt"),
        ("ch5_strict.py", "ch5_strict.txt"),
    ],
)
def test_a_server_demo_prints_what_the_page_shows(script, output):
    assert masked(run_example(script, timeout=60)) == masked(shown(output))


def test_the_page_shows_the_masked_form():
    # What the page shows must not carry one run's ports, ids or times.
    for name in ["ch5_servers.txt", "ch5_trace.txt", "ch5_strict.txt"]:
        assert masked(shown(name)) == shown(name), name


def test_both_servers_ran_lifespan_and_shared_its_state_between_requests():
    printed = shown("ch5_servers.txt")
    assert printed.count("Request 1 since startup.") == 2  # once per server
    assert printed.count("Request 2 since startup.") == 2
    assert printed.count("got 'echo: hi'") == 2


def test_the_trace_shows_the_request_with_the_id_the_client_sent():
    printed = shown("ch5_trace.txt")
    assert "── asgi http · POST /echo · id ch5-echo" in printed
    assert "receive() ->  type='http.request' body=b'ping'" in printed
    assert "state={'counter': {'requests': 0}}" in printed


def test_strict_answers_500_naming_the_rule_and_logs_one_line():
    printed = shown("ch5_strict.txt")
    rule = "must be an iterable of [name, value] pairs of bytes"
    assert "< HTTP/1.1 500 Internal Server Error" in printed
    assert printed.count(rule) == 2  # the body and the ERROR line
    assert "Traceback" not in printed


def test_the_app_under_rootserves_validator():
    with Client(ch5_app.app) as client:  # strict: every message is checked
        assert client.get("/").text == "Hello from ASGI! Request 1 since startup.\n"
        assert client.get("/").text == "Hello from ASGI! Request 2 since startup.\n"
        assert client.post("/echo", body=b"ping").text == "ping\n"
        missing = client.get("/nowhere")
        assert missing.status == 404
        with client.websocket_connect("/ws") as session:
            session.send_text("hi")
            assert session.receive_text() == "echo: hi"
            session.send_bytes(b"\x00\x01")
            assert session.receive_bytes() == b"\x00\x01"
        assert client.errors == []


def test_the_app_stops_when_the_client_has_gone():
    sent = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/echo", "state": {}}
    asyncio.run(ch5_app.app(scope, receive, send))
    assert sent == []


def test_the_broken_app_is_the_one_strict_catches():
    with Client(ch5_strict.app) as client:
        assert client.get("/").status == 500
        assert len(client.errors) == 1
    with Client(ch5_strict.app, strict=False) as client:  # what a server without --strict does
        assert client.get("/").status == 500


def test_the_wsgi_app_passes_wsgiref_validate():
    from guide_support import call_validated

    status, _, body = call_validated(ch5_wsgi_inside.wsgi_app, "POST", "/r", b"abc", "text/plain")
    assert status == "200 OK"
    assert body.startswith(b"/r: 3 bytes, on thread ")


@pytest.mark.parametrize("app", [starlette_app, fastapi_app])
def test_the_framework_apps_under_rootserves_validator(app):
    with Client(app) as client:
        response = client.get("/hello?name=Ada")
        assert response.status == 200
        assert "Ada" in response.text
        assert client.errors == []


def test_exercise_1_adds_the_field_and_passes_other_scopes_through():
    with Client(ch5_ex1.app) as client:
        response = client.get("/")
        assert response.header("x-served-by") == "chapter-5"
        assert client.errors == []
    seen = []

    async def inner(scope, receive, send):
        seen.append(scope["type"])

    asyncio.run(ch5_ex1.add_header(inner, "X-A", "b")({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]


def test_exercise_2_refuses_before_accepting():
    with Client(ch5_ex2.app) as client:
        with pytest.raises(WebSocketRejected) as refused:
            client.websocket_connect("/ws?token=guess")
        assert refused.value.status == 403
        assert client.errors == []
        with client.websocket_connect(f"/ws?token={ch5_ex2.TOKEN}") as session:
            session.send_text("a")
            assert session.receive_text() == "echo: a"
