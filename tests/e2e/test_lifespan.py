"""ASGI lifespan over a running server: auto, on and off; failures; state; shutdown."""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx
import pytest
from tests.apps import odd_apps
from tests.helpers import serve

from rootserve.config import Config
from rootserve.server.worker import Server
from rootserve.supervisor.sockets import bind_all
from rootserve.types import Receive, Scope, Send

WAIT = 10.0


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(logging.getLogger("rootserve"), "propagate", True)
    caplog.set_level(logging.INFO, logger="rootserve")
    return caplog


def run_to_exit(app: Any, **settings: Any) -> Server:
    """Run a server that is expected to stop by itself (a failed startup); return it."""
    sockets = bind_all(["127.0.0.1:0"], 16)
    server = Server(Config(port=0, access_log=False, **settings), app, sockets)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert server.stopped.wait(WAIT), "the server did not stop by itself"
        assert not server.started.is_set()  # it never listened
    finally:
        if not server.stopped.is_set():
            server.request_stop()
        thread.join(WAIT)
        for sock in sockets:
            sock.close()
    return server


class Recorder:
    """A lifespan-aware app that records every message and what requests saw."""

    def __init__(self, *, startup: str = "lifespan.startup.complete") -> None:
        self.startup = startup
        self.events: list[str] = []
        self.request_states: list[dict[str, Any] | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self.events.append(f"scope asgi {scope['asgi']['version']}")
            while True:
                message = await receive()
                self.events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["name"] = "from startup"
                    scope["state"]["shared"] = []
                    await send({"type": self.startup, "message": "not today"})
                    if self.startup.endswith("failed"):
                        return
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.events.append("request")
        state = scope.get("state")
        self.request_states.append(None if state is None else dict(state))
        if state is not None:
            # Per the ASGI spec each request gets a shallow copy: rebinding a key here does
            # not reach the next request, but objects inside are the same objects.
            state["name"] = "changed by a request"
            state["added"] = True
            state["shared"].append(len(self.request_states))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def test_startup_before_requests_and_shutdown_after_stop():
    app = Recorder()
    with serve(app) as running:
        assert app.events == ["scope asgi 3.0", "lifespan.startup"]  # done before listening
        assert httpx.get(running.url).text == "ok"
        assert "lifespan.shutdown" not in app.events
    assert app.events == ["scope asgi 3.0", "lifespan.startup", "request", "lifespan.shutdown"]


def test_state_is_a_shallow_copy_per_request():
    app = Recorder()
    with serve(app) as running, httpx.Client(base_url=running.url) as client:
        for _ in range(3):
            assert client.get("/").status_code == 200
    first, second, third = app.request_states
    assert first is not None and second is not None and third is not None
    # Top-level keys set by one request do not leak into the next one's copy...
    assert first["name"] == second["name"] == third["name"] == "from startup"
    assert "added" not in second and "added" not in third
    # ...while a mutable value is the same object for everyone (a shallow copy).
    assert third["shared"] == [1, 2, 3]


def test_auto_serves_an_app_without_lifespan_support(logs):
    with serve(odd_apps.no_lifespan) as running:
        assert httpx.get(running.url).text == "hello"
    assert "does not support ASGI lifespan" in logs.text
    assert "unsupported scope type 'lifespan'" in logs.text
    assert not [r for r in logs.records if r.levelno >= logging.ERROR]


def test_auto_without_lifespan_support_puts_no_state_in_the_scope():
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        seen.append(scope)
        await odd_apps.no_lifespan(scope, receive, send)

    with serve(app) as running:
        httpx.get(running.url)
    assert "state" not in seen[0]


def test_on_fails_startup_for_an_app_without_lifespan_support(logs):
    server = run_to_exit(odd_apps.no_lifespan, lifespan="on")
    assert server.exit_code == 3
    assert "raised RuntimeError during lifespan startup" in logs.text
    assert "--lifespan off" in logs.text  # the way out is named


def test_on_fails_startup_for_an_app_that_returns_without_answering(logs):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            return

    assert run_to_exit(app, lifespan="on").exit_code == 3
    assert "returned without answering lifespan.startup" in logs.text


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_failed_message_stops_the_server(logs, mode: str):
    app = Recorder(startup="lifespan.startup.failed")
    assert run_to_exit(app, lifespan=mode).exit_code == 3
    assert "the app's startup failed: not today" in logs.text
    assert "request" not in app.events


def test_startup_failed_from_a_module_app(logs):
    assert run_to_exit(odd_apps.refused_startup).exit_code == 3
    assert "database unreachable" in logs.text


def test_shutdown_failed_is_logged(logs):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.failed", "message": "could not flush"})
            return
        await odd_apps.no_lifespan(scope, receive, send)

    with serve(app) as running:
        assert httpx.get(running.url).status_code == 200
    assert "shutdown failed: could not flush" in logs.text


def test_off_sends_nothing():
    app = Recorder()
    with serve(app, lifespan="off") as running:
        assert httpx.get(running.url).text == "ok"
    assert app.events == ["request"]
    assert app.request_states == [None]


def test_off_serves_an_app_that_would_fail_startup():
    with serve(odd_apps.refused_startup, lifespan="off") as running:
        assert httpx.get(running.url).text == "hello"
