"""deploy/rootserve.socket and rootserve.service: systemd's own checker finds nothing to
say about them, the numbers that must agree do, and the service's command line, started
the way the socket unit starts it, serves on the socket it is handed and drains on TERM."""

from __future__ import annotations

import queue
import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

import pytest
from tests.deploy.nginx_support import NGINX_CONF
from tests.deploy.tools import ROOT, require, rootserve_args
from tests.helpers import cli_env

from rootserve.config import default
from rootserve.exit_codes import EXIT_APP, EXIT_USAGE

pytestmark = pytest.mark.timeout(660)  # only a missing systemd takes long: its install

SOCKET = ROOT / "deploy" / "rootserve.socket"
SERVICE = ROOT / "deploy" / "rootserve.service"
SERVED = 30.0  # seconds, at most, for an answer that waits for the workers' start


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Each section's keys and their values, in order (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service(key: str) -> str:
    (value,) = unit(SERVICE)["Service"][key]
    return value


def exec_start() -> list[str]:
    return shlex.split(service("ExecStart"))


def given() -> dict[str, object]:
    """The settings the ExecStart line gives, by name (defaults left out)."""
    return rootserve_args(exec_start()[1:])


def setting(name: str) -> float:
    return float(str(given().get(name, default(name))))


@pytest.fixture(scope="module")
def systemd_analyze(tmp_path_factory: pytest.TempPathFactory) -> str:
    tool = require("systemd-analyze", apt="systemd")
    # Whether verify works on this machine at all: a unit that cannot be faulted.
    folder = tmp_path_factory.mktemp("probe")
    (folder / "probe.service").write_text("[Service]\nType=exec\nExecStart=/bin/true\n")
    done = verify(tool, folder / "probe.service")
    if done.returncode != 0 or done.stdout.strip() or done.stderr.strip():
        pytest.skip(f"systemd-analyze verify does not work here: {done.stderr.strip()}")
    return tool


def verify(tool: str, *units: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool, "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def installed_copies(folder: Path, service_text: str) -> list[Path]:
    """The two units as installed on this machine: ExecStart names this rootserve (verify
    checks that the program exists), the rest as it is."""
    rootserve = require("rootserve")
    socket_unit, service_unit = folder / "rootserve.socket", folder / "rootserve.service"
    socket_unit.write_text(SOCKET.read_text(encoding="utf-8"))
    service_unit.write_text(service_text.replace(exec_start()[0], rootserve))
    return [socket_unit, service_unit]


def test_systemd_analyze_verify_finds_nothing(systemd_analyze: str, tmp_path: Path) -> None:
    units = installed_copies(tmp_path, SERVICE.read_text(encoding="utf-8"))
    done = verify(systemd_analyze, *units)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "" and done.stderr.strip() == ""


def test_systemd_analyze_verify_bites(systemd_analyze: str, tmp_path: Path) -> None:
    # systemd ignores what it cannot parse, with a warning: verify must show it.
    text = SERVICE.read_text(encoding="utf-8").replace("KillMode=mixed", "KillMode=mixd")
    done = verify(systemd_analyze, *installed_copies(tmp_path, text))
    assert "mixd" in done.stderr


def test_the_socket_activates_this_service() -> None:
    # foo.socket starts foo.service unless Service= says otherwise.
    assert SOCKET.stem == SERVICE.stem
    assert "Service" not in unit(SOCKET)["Socket"]
    assert unit(SERVICE)["Unit"]["Requires"] == [SOCKET.name]
    assert unit(SERVICE)["Unit"]["After"] == [SOCKET.name]


def test_the_service_runs_rootserve_on_the_passed_sockets() -> None:
    assert Path(exec_start()[0]).name == "rootserve"  # exec'd itself: LISTEN_PID is its pid
    settings = given()
    # No --bind, --host or --port: the LISTEN_FDS sockets are served.
    assert not {"bind", "host", "port"} & settings.keys()
    assert int(str(settings["workers"])) >= 2
    assert service("Type") == "exec"  # rootserve does not speak sd_notify


def test_the_socket_is_where_nginx_sends_and_queues_as_rootserve_would() -> None:
    (address,) = unit(SOCKET)["Socket"]["ListenStream"]
    assert f"server {address};" in NGINX_CONF.read_text(encoding="utf-8")
    assert int(unit(SOCKET)["Socket"]["Backlog"][0]) == default("backlog")


def test_stop_drains_within_the_timeout_and_reload_rolls() -> None:
    assert service("KillSignal") == "SIGTERM"
    # The supervisor alone gets TERM: a worker that got it twice would stop at once.
    assert service("KillMode") == "mixed"
    drain = setting("shutdown_delay") + setting("timeout_graceful")
    assert setting("timeout_graceful") > 0
    assert float(service("TimeoutStopSec")) > drain
    assert service("ExecReload") == "/bin/kill -HUP $MAINPID"


def test_exits_that_need_a_fix_are_not_restarted() -> None:
    assert service("Restart") == "on-failure"
    assert {EXIT_USAGE, EXIT_APP} <= set(map(int, service("RestartPreventExitStatus").split()))


def test_the_service_is_hardened() -> None:
    keys = unit(SERVICE)["Service"]
    assert keys.get("DynamicUser") == ["yes"] or "User" in keys
    assert service("ProtectSystem") == "strict"
    assert service("NoNewPrivileges") == "yes"
    assert service("PrivateTmp") == "yes"  # the one writable place the metrics need
    assert service("CapabilityBoundingSet") == ""


class Output:
    """A process's output lines, read by a thread as they come, waited on by pattern."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        self._stream = proc.stdout
        self._reader = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip())

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + SERVED
        while not any(text in line for line in self.seen):
            left = deadline - time.monotonic()
            try:
                self.seen.append(self.lines.get(timeout=max(left, 0.0)))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r}: {self.seen}") from None

    def rest(self) -> str:
        """Every line, once the process has ended."""
        self._reader.join(SERVED)
        self._stream.close()
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "\n".join(self.seen)


def test_the_command_line_serves_the_socket_it_is_handed(tmp_path: Path) -> None:
    # systemd-socket-activate does what the .socket unit does: it listens, and on the
    # first connection execs the command with the socket as fd 3 and LISTEN_FDS set.
    activate = require("systemd-socket-activate", apt="systemd")
    path = tmp_path / "app.sock"
    # The unit's arguments, but a test app from this checkout, and the metrics on a free
    # port (this machine may run others).
    swap = {
        str(given()["app"]): "tests.apps.pid_app:app",
        str(given()["app_dir"]): str(ROOT),
        str(given()["metrics_bind"]): "127.0.0.1:0",
    }
    args = [swap.get(arg, arg) for arg in exec_start()[1:]]
    proc = subprocess.Popen(
        [activate, "-l", str(path), require("rootserve"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        env=cli_env(),
        text=True,
    )
    output = Output(proc)
    try:
        output.wait_for(f"Listening on {path}")
        # The connection waits in the backlog while rootserve and its workers start.
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(SERVED)
            client.connect(str(path))
            client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := client.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        # On the passed socket, not on --host/--port's default.
        output.wait_for(f"Serving with {given()['workers']} worker(s), ASGI, loop")
        output.wait_for(f"on unix:{path}")
    finally:
        proc.terminate()  # what `systemctl stop` sends (KillSignal=)
        try:
            proc.wait(timeout=SERVED)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    out = output.rest()
    assert proc.returncode == 0, out
    assert f"SIGTERM: draining {given()['workers']} worker(s)" in out
