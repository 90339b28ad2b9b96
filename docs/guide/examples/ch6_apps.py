"""Chapter 6: the same three routes twice, in Flask (a WSGI app) and in FastAPI (an ASGI app).

Both answer in plain text, so that one test can check both (ch6_testing.py).
"""

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from flask import Flask, request

# -- Flask: `flask_app(environ, start_response)` -------------------------------------------

flask_app = Flask(__name__)
TEXT = {"Content-Type": "text/plain; charset=utf-8"}


@flask_app.get("/greet")
def greet():
    name = request.args.get("name", "stranger")
    return f"Hello, {name}!\n", TEXT


@flask_app.post("/echo")
def echo():
    data = request.get_data()
    return f"You posted {len(data)} bytes: {data.decode('utf-8', 'replace')}\n", TEXT


# -- FastAPI: `await fastapi_app(scope, receive, send)` ------------------------------------

fastapi_app = FastAPI()


@fastapi_app.get("/greet", response_class=PlainTextResponse)
async def greet_async(name: str = "stranger"):
    return f"Hello, {name}!\n"


@fastapi_app.post("/echo", response_class=PlainTextResponse)
async def echo_async(request: Request):
    data = await request.body()
    return f"You posted {len(data)} bytes: {data.decode('utf-8', 'replace')}\n"
