"""Each ASGI request runs in a task of its own: named, and made by the app's task factory
when the app set one on the loop during lifespan startup."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from tests.helpers import serve

from rootserve.asgi.http import TASK_NAME
from rootserve.types import Receive, Scope, Send


async def answer_with_task_name(send: Send) -> None:
    task = asyncio.current_task()
    name = task.get_name() if task is not None else "no task"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": name.encode()})


async def plain_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await answer_with_task_name(send)


def test_a_request_runs_in_a_named_task_of_its_own() -> None:
    with serve(plain_app, lifespan="off") as running, httpx.Client(base_url=running.url) as c:
        assert c.get("/").text == TASK_NAME


def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    kwargs["name"] = "made-by-the-app-factory"
    return asyncio.Task(coro, loop=loop, **kwargs)


async def app_with_a_factory(scope: Scope, receive: Receive, send: Send) -> None:
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
        await answer_with_task_name(send)


def test_a_task_factory_set_at_startup_makes_the_request_tasks() -> None:
    with serve(app_with_a_factory) as running, httpx.Client(base_url=running.url) as c:
        assert c.get("/").text == "made-by-the-app-factory"
