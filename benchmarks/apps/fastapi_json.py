"""A FastAPI app (ASGI): GET / answers PAYLOAD as JSON; other paths get 404."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from benchmarks.apps.payload import PAYLOAD

app = FastAPI()


@app.get("/")
async def json_endpoint() -> dict[str, Any]:
    return PAYLOAD
