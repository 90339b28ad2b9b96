"""`rootserve --trace` as a user runs it: the blocks on stderr for the demo app (an ASGI
request, a WSGI request through the mounted app, the lifespan), JSON blocks from workers,
--trace-path, and the flags in --help."""

from __future__ import annotations

import json

import pytest
from tests.e2e.workers_support import raw_get, supervisor
from tests.helpers import run_cli

pytestmark = pytest.mark.slow


def test_the_demo_app_traced() -> None:
    with supervisor("--trace") as running:
        port = running.port
        assert raw_get(port, "/api/info").startswith(b"HTTP/1.1 200 ")
        assert raw_get(port, "/wsgi/").startswith(b"HTTP/1.1 200 ")
        running.wait_for(r"^ +\d+\.\d{3} ms  app returned", 2)
        assert running.stop() == 0
        running.wait_for(r"lifespan\.shutdown\.complete")
    log = "\n".join(running.lines)
    assert "── asgi lifespan" in log
    assert "── asgi http · GET /api/info · id " in log
    assert "── asgi http · GET /wsgi/ · id " in log
    for label in ("wsgi environ", "wsgi start_response()", "wsgi body iterable gave"):
        assert f"ms  {label}  " in log
    assert "\x1b[" not in log  # stderr is not a terminal here: no colour


def test_json_blocks_from_workers_for_some_paths() -> None:
    with supervisor("-w", "2", "--trace-format", "json", "--trace-path", "/api/*") as running:
        port = running.port
        running.worker_pids(2)
        for path in ("/", "/api/info", "/stream", "/api/info"):
            assert raw_get(port, path).startswith(b"HTTP/1.1 200 ")
        found = running.wait_for(r'^\{"contract": "asgi", "type": "http"', 2)
        assert running.stop() == 0
    blocks = [json.loads(match.string) for match in found]
    assert [b["path"] for b in blocks] == ["/api/info", "/api/info"]
    assert all(b["final"] and b["events"][-1]["event"] == "returned" for b in blocks)
    assert not any('"path": "/stream"' in line for line in running.lines)


def test_the_flags_in_help_and_a_bad_value() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    learn = done.stdout.split("learning and debugging:", 1)[1]
    for flag in ("--strict", "--trace", "--trace-format {text,json}", "--trace-path GLOB"):
        assert flag in learn
    bad = run_cli("--trace-format", "xml")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "--trace-format" in bad.stderr
