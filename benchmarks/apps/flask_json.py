"""A Flask app (WSGI): GET / answers PAYLOAD as JSON; other paths get 404."""

from __future__ import annotations

from typing import Any

from flask import Flask

from benchmarks.apps.payload import PAYLOAD

app = Flask(__name__)


@app.get("/")
def json_endpoint() -> dict[str, Any]:
    return PAYLOAD
