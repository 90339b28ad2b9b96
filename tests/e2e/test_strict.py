"""--strict: the server runs the app through its contract's validator; a broken rule is
answered with a 500 that names it and one log line, and the server goes on."""

from __future__ import annotations

import pytest
from tests.e2e.workers_support import raw_get, supervisor

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("app", "rule"),
    [
        ("tests.apps.broken_contract:body_first", "ASGI http: "),
        ("tests.apps.broken_contract:returns_str", "WSGI: "),
    ],
)
def test_a_broken_rule_is_a_500_naming_it_and_one_log_line(app: str, rule: str):
    with supervisor(app, "--strict") as running:
        port = running.port
        for _ in range(2):  # and the server goes on
            data = raw_get(port)
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 500 "), data
            assert body.decode().startswith(rule), body
            assert b"PEP 3333" in body or b"spec" in body
        lines = running.wait_for(rule.strip(), 2)
        assert all("Traceback" not in m.string for m in lines)
        assert not [line for line in running.lines if line.startswith("Traceback")]
        assert running.stop() == 0


def test_a_correct_app_is_unchanged_under_strict():
    with supervisor("tests.apps.broken_contract:fine", "--strict") as running:
        data = raw_get(running.port)
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"fine")
        assert running.stop() == 0
