"""The JSON document both framework apps answer: ten fields of the usual kinds.

flask_json and fastapi_json return this same dict, so the Flask and FastAPI rows differ by
framework and server only. The driver's probe parses each answer and compares it with
PAYLOAD (Flask sorts the keys, FastAPI keeps their order), and the floor server
(benchmarks/floor.py) answers its canned hello, not this.
"""

from __future__ import annotations

from typing import Any

PAYLOAD: dict[str, Any] = {
    "id": 12345,
    "name": "rootserve",
    "active": True,
    "score": 98.6,
    "tags": ["asgi", "wsgi", "http"],
    "owner": {"id": 7, "login": "bench"},
    "created": "2026-01-01T00:00:00Z",
    "count": 42,
    "ratio": 0.25,
    "note": None,
}
