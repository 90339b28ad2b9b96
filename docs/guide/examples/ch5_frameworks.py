"""Chapter 5: a Starlette app and a FastAPI app are ASGI callables; call each by hand.

Both are called exactly as ch5_call_by_hand.py calls ch5_app: a scope, a receive() that
hands out one http.request message, and a send() that prints what comes back.
"""

import asyncio
import inspect

from ch5_call_by_hand import converse, http_scope, inbox_of
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse(f"Hello from Starlette, {request.query_params['name']}!\n")


starlette_app = Starlette(routes=[Route("/hello", hello)])

fastapi_app = FastAPI()


@fastapi_app.get("/hello")
async def fastapi_hello(name: str):
    return {"greeting": f"Hello from FastAPI, {name}!"}


async def main():
    request = {"type": "http.request", "body": b"", "more_body": False}
    for name, app in [("starlette_app", starlette_app), ("fastapi_app", fastapi_app)]:
        print(f"{name} is a {type(app).__name__}; its __call__ is async:", end=" ")
        print(inspect.iscoroutinefunction(type(app).__call__))
        scope = {**http_scope("GET", "/hello", {}), "query_string": b"name=Ada"}
        await converse(app, scope, inbox_of(request))
        print()


if __name__ == "__main__":
    asyncio.run(main())
