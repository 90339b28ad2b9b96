"""The wheel as a user gets it: built from this tree, installed with a plain `pip install`
(no dev extra, dependencies from the index) into a fresh venv, then run as
`python -m rootserve` and as the `rootserve` script, serving an ASGI app file, a WSGI
module and the built-in demo. The source run builds the pure-Python wheel (the default, and
the fallback where no compiled wheel fits); the compiled run (ROOTSERVE_BUILD=compiled)
installs the compiled wheel that `make compiled` built, and checks that its hot modules are
the extensions.

Everywhere else the dev extra is installed too, so a runtime import that pyproject.toml
does not declare as a dependency goes unnoticed; here it fails.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers import ROOT, cli_env, start_cli

from rootserve import __version__

PIP_TIMEOUT = 180  # seconds for one pip command: it may download from the index
READY = r"Listening on (http://127\.0\.0\.1:\d+)"
LISTEN = ("--host", "127.0.0.1", "--port", "0")

ASGI_APP = """\
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b"asgi from the wheel " + scope["path"].encode()
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"""

WSGI_APP = """\
def app(environ, start_response):
    body = b"wsgi from the wheel " + environ["PATH_INFO"].encode("latin-1")
    start_response("202 Accepted", [("Content-Type", "text/plain")])
    return [body]
"""

# Imports every module of the installed package, so that a missing dependency shows even
# where rootserve imports it only when needed; prints where the package was found.
IMPORT_ALL = """\
import importlib, pkgutil, rootserve

def fail(name):
    raise ImportError(f"cannot import {name}")

for module in pkgutil.walk_packages(rootserve.__path__, "rootserve.", onerror=fail):
    importlib.import_module(module.name)
print(rootserve.__file__)
"""

# Where the compiled wheel's hot modules come from: an extension, not the .py beside it.
HOT_MODULES = """\
import rootserve.protocol.http11, rootserve.server.connection, rootserve.wsgi.adapter
for module in (rootserve.protocol.http11, rootserve.server.connection, rootserve.wsgi.adapter):
    print(module.__file__)
"""

COMPILED = os.environ.get("ROOTSERVE_BUILD") == "compiled"
WHEELS = ROOT / "build" / "wheels"  # where `make compiled` leaves the compiled wheel

# uvloop is a dependency only where its marker in pyproject.toml holds.
HAS_UVLOOP = sys.platform != "win32" and platform.python_implementation() == "CPython"


def clean_env() -> dict[str, str]:
    """The environment of the fresh venv's processes: nothing in it points Python back at
    this checkout or at the test's own venv."""
    env = cli_env()
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


def run(*args: str | Path, cwd: Path, timeout: float = PIP_TIMEOUT) -> str:
    """Run a command to completion; its stdout, or a failure showing both outputs."""
    argv = [str(arg) for arg in args]
    done = subprocess.run(
        argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (
        f"{argv} exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done.stdout


def curl(url: str, cwd: Path) -> tuple[int, str]:
    out = run(
        *("curl", "--silent", "--show-error", "--noproxy", "*", "--max-time", "10"),
        *("--write-out", r"\n%{http_code}", url),
        cwd=cwd,
        timeout=20,
    )
    body, _, status = out.rpartition("\n")
    return int(status), body


def serve_and_get(script: Path, *args: str, cwd: Path, path: str = "/") -> tuple[int, str]:
    """Start the installed `rootserve ARGS` on a free port, GET `path` with curl, stop it
    with SIGTERM; the status and body (the stop must exit 0)."""
    with start_cli(
        *args, *LISTEN, cwd=cwd, env=clean_env(), ready=READY, command=[str(script)]
    ) as cli:
        status, body = curl(cli.url + path, cwd)
        code = cli.stop(signal.SIGTERM)
    output = "\n".join(cli.lines)
    assert code == 0, f"rootserve {' '.join(args)} exited {code} on SIGTERM:\n{output}"
    return status, body


@pytest.mark.slow
@pytest.mark.timeout(2 * PIP_TIMEOUT + 60)
def test_wheel_installs_and_runs_without_the_dev_extra(tmp_path: Path):
    if COMPILED:
        wheels = sorted(WHEELS.glob("*.whl"))
        assert len(wheels) == 1, f"`make compiled` leaves one compiled wheel in {WHEELS}"
        wheel = wheels[0]
        tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
        assert wheel.name.startswith(f"rootserve-{__version__}-{tag}-{tag}-"), wheel.name
    else:
        # Build: pip runs the build backend (hatchling) in an isolated environment.
        dist = tmp_path / "dist"
        run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, ROOT, cwd=tmp_path)
        [wheel] = dist.glob("*.whl")
        assert wheel.name == f"rootserve-{__version__}-py3-none-any.whl"

    # Install into a fresh venv of this Python: no system site-packages, no dev extra.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python, script = venv / "bin" / "python", venv / "bin" / "rootserve"
    run(python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path)

    assert run(python, "-m", "rootserve", "--version", cwd=tmp_path).strip() == (
        f"rootserve {__version__}"
    )
    found = Path(run(python, "-c", IMPORT_ALL, cwd=tmp_path).strip())
    assert found.is_relative_to(venv / "lib"), f"rootserve imported from {found}"
    hot = run(python, "-c", HOT_MODULES, cwd=tmp_path).split()
    assert all(name.endswith(".so") is COMPILED for name in hot), hot

    # An ASGI app given as a file path (on uvloop, which the wheel must have brought).
    site = tmp_path / "site"
    site.mkdir()
    (site / "asgi_hello.py").write_text(ASGI_APP)
    loop = ("--loop", "uvloop") if HAS_UVLOOP else ()
    reply = serve_and_get(script, "site/asgi_hello.py:app", *loop, cwd=tmp_path, path="/a")
    assert reply == (201, "asgi from the wheel /a")

    # A WSGI app given as module:attr with --app-dir.
    (site / "wsgi_hello.py").write_text(WSGI_APP)
    reply = serve_and_get(script, "wsgi_hello:app", "--app-dir", str(site), cwd=tmp_path, path="/w")
    assert reply == (202, "wsgi from the wheel /w")

    # No APP at all: the built-in demo app.
    status, body = serve_and_get(script, cwd=tmp_path)
    assert status == 200
    assert "rootserve is serving" in body
