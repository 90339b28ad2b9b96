"""What a start imports: the parts a setting turns on are imported only when it does.

Start-up time is a measured target (benchmarks/footprint.py: start to first answer against
uvicorn's), and imports are most of it: the tracer, the validators, the supervisor and the
readers of optional files cost a start tens of milliseconds (python -X importtime) that one
process serving an app with default settings never uses. A module-level import of any of
them, added anywhere on the way, shows here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Imported only when their setting asks for them (loading.py, cli.py, observe/logs.py).
OPTIONAL = [
    "rootserve.observe.trace",  # --trace
    "rootserve.validate._asgi",  # --strict
    "rootserve.validate._wsgi",
    "rootserve.supervisor.arbiter",  # --workers, --reload
    "rootserve.supervisor.reload",
    "logging.config",  # --log-config
    "tomllib",  # a pyproject.toml, or a TOML --log-config
    "rootserve.wsgi.runner",  # a WSGI app (server/assembly.py)
    "rootserve.server.static",  # --static
    "h2",  # the first HTTP/2 connection (server/h2_detect.py)
    "hyperframe",
    "rootserve.protocol.http2",
    "rootserve.server.h2_connection",
    "websockets",  # the first WebSocket handshake (server/assembly.py WebSocketOnFirstUse)
    "rootserve.asgi.websocket",
    "rootserve.asgi._websocket_session",
    "importlib.metadata",  # (websockets imports it)
]

SCRIPT = """
import asyncio, json, sys
from rootserve.cli import main
from rootserve.server.assembly import build_runners
from rootserve.server.connection import Connection
from rootserve.server.state import ServerState
from rootserve.config import Config
from rootserve.loading import dress_app, load_configured_app

config = Config(app="tests.apps.probe:app", **json.loads(sys.argv[1]))
app, interface = load_configured_app(config)
app = dress_app(app, interface, config)
loop = asyncio.new_event_loop()
runner, _ = build_runners(config, app, interface, {}, loop, multiprocess=False)
state = ServerState.from_config(config, runner=runner, loop=loop)
Connection(state)
print(json.dumps(sorted(sys.modules)))
"""


def imported_by_a_start(cwd: Path, **settings: object) -> set[str]:
    """The modules imported once the command's modules are in and the app is dressed."""
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(settings)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent), "PATH": ""},
    )
    assert run.returncode == 0, run.stderr
    return set(json.loads(run.stdout))


def test_a_plain_start_imports_no_optional_part(tmp_path: Path) -> None:
    modules = imported_by_a_start(tmp_path)  # (a folder without a pyproject.toml)
    assert "rootserve.server.worker" in modules  # (the script did reach the server)
    assert sorted(set(OPTIONAL) & modules) == []


@pytest.mark.parametrize(
    ("setting", "module"),
    [("trace", "rootserve.observe.trace"), ("strict", "rootserve.validate._asgi")],
)
def test_the_setting_imports_its_part(tmp_path: Path, setting: str, module: str) -> None:
    assert module in imported_by_a_start(tmp_path, **{setting: True})
