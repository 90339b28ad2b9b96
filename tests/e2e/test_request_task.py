"""Each ASGI request runs in a task of its own: named, and made by the app's task factory
when the app set one on the loop during lifespan startup."""

from __future__ import annotations

import asyncio
import sys
import weakref
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests.helpers import Peer, serve

from rootserve.asgi.http import TASK_NAME
from rootserve.types import ASGIApp, Receive, Scope, Send

Factory = Callable[..., "asyncio.Task[Any]"]


MADE_BY_THE_FACTORY: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


async def answer(scope: Scope, send: Send) -> None:
    """200 with `task-name path` as the body (and `(factory)` if the app's factory made it)."""
    task = asyncio.current_task()
    name = task.get_name() if task is not None else "no task"
    if task in MADE_BY_THE_FACTORY:
        name += " (factory)"
    body = f"{name} {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def app_setting(factory: Factory | None) -> ASGIApp:
    """An app that sets `factory` as the loop's task factory at lifespan startup."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    asyncio.get_running_loop().set_task_factory(factory)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    asyncio.get_running_loop().set_task_factory(None)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            await answer(scope, send)

    return app


def recording_factory(
    loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
) -> asyncio.Task[Any]:
    task = asyncio.Task(coro, loop=loop, **kwargs)
    MADE_BY_THE_FACTORY.add(task)
    return task


def eager_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    # What asyncio.eager_task_factory does (Python 3.12+), written out: uvloop passes
    # keyword arguments that factory does not take. An eager task answers without waiting:
    # the response is finished while the server is still dispatching the events of the
    # bytes that brought its request.
    kwargs["eager_start"] = True
    return asyncio.Task(coro, loop=loop, **kwargs)


def failing_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    raise RuntimeError("this task factory fails")


def test_a_request_runs_in_a_named_task_of_its_own() -> None:
    with serve(app_setting(None)) as running, httpx.Client(base_url=running.url) as c:
        assert c.get("/").text == f"{TASK_NAME} /"


def test_a_task_factory_set_at_startup_makes_the_request_tasks() -> None:
    with serve(app_setting(recording_factory)) as running, httpx.Client(base_url=running.url) as c:
        assert c.get("/").text == f"{TASK_NAME} (factory) /"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are Python 3.12+")
def test_eager_tasks_answer_a_pipeline_in_order_then_its_refusal() -> None:
    with serve(app_setting(eager_factory)) as running, Peer(running.port) as peer:
        peer.send(
            b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /c HTTP/1.1\r\n\r\n"  # no Host: 400 (RFC 9112 section 3.2)
        )
        replies = [peer.response() for _ in range(3)]
        # (The body ends with the path; an eager task runs before it is given its name.)
        assert [(r.status, r.body.split()[-1]) for r in replies[:2]] == [(200, b"/a"), (200, b"/b")]
        assert replies[2].status == 400
        assert replies[2].header("connection") == "close"
        assert peer.at_eof()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are Python 3.12+")
def test_eager_tasks_keep_a_connection_alive() -> None:
    with serve(app_setting(eager_factory)) as running, Peer(running.port) as peer:
        for path in ("/1", "/2", "/3"):
            peer.send(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            reply = peer.response()
            assert reply.status == 200
            assert reply.body.split()[-1] == path.encode()
            assert reply.header("connection") is None


def test_a_failing_task_factory_does_not_hold_up_the_stop() -> None:
    # serve() asserts that the server thread stops once the block ends, and waits less
    # than the graceful timeout: a cycle left counted as running would hold the stop.
    with (
        serve(app_setting(failing_factory), timeout_graceful=30) as running,
        Peer(running.port, resets_are_eof=True) as peer,
    ):
        peer.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert peer.to_eof() == b""  # the connection is dropped, not answered
