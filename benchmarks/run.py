"""Benchmark rootserve against its peers on the same machine, one worker each.

Run from the repository root (`make bench` does it):

    .venv/bin/python benchmarks/run.py                # asgi-hello and ws-echo, 3 rounds of 8 s
    .venv/bin/python benchmarks/run.py --quick        # one round of 3 s per server
    .venv/bin/python benchmarks/run.py --wsgi         # also the WSGI scenarios
    .venv/bin/python benchmarks/run.py --no-ws        # without the WebSocket scenario
    .venv/bin/python benchmarks/run.py --only wsgi-echo-64k --all-peers

For each scenario and server: start the server pinned to one CPU (`taskset`), wait until it
answers, warm it up, then load it with `wrk` (for WebSocket, `benchmarks/ws_client.py`)
pinned to another CPU while measuring the CPU time the server's whole process tree spends.
Prints one table per scenario and writes JSON to `build/bench/latest.json`. See
benchmarks/README.md for how to read the numbers.

Everything targets 127.0.0.1, every wait is bounded, and only the processes started here are
stopped (by PID).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: `benchmarks.apps` must import

from benchmarks import peers  # noqa: E402  (after the path is set)
from benchmarks.apps.payload import PAYLOAD  # noqa: E402

BENCH_DIR = ROOT / "benchmarks"
COMPILED_TREE = ROOT / "build" / "compiled"  # make compiled: the compiled wheel, unpacked
BIN = Path(sys.executable).parent  # rootserve's, the project venv's
# The peers live in a venv of their own (benchmarks/peers.py; main() installs them).
PEER_BIN = ROOT / "build" / "bench-peers" / "venv" / "bin"
HOST = "127.0.0.1"
DEFAULT_JSON = ROOT / "build" / "bench" / "latest.json"
BASELINE = "rootserve"

READY_TIMEOUT = 10.0  # seconds for a server to accept a connection and answer a probe
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
WRK_GRACE = 15.0  # seconds wrk may overrun its own duration before it is killed
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- wrk output


_UNITS_TIME = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}  # to milliseconds
_UNITS_SIZE = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_LATENCY_ROW = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+(\d+(?:\.\d+)?)(us|ms|s|m|h)\s*$", re.M)
_TOTAL = re.compile(
    r"^\s*(\d+) requests in (\d+(?:\.\d+)?)(us|ms|s|m|h), (\d+(?:\.\d+)?)(B|KB|MB|GB|TB) read",
    re.M,
)
_RPS = re.compile(r"^Requests/sec:\s*(\d+(?:\.\d+)?)", re.M)
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M
)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.M)


def parse_wrk(text: str) -> dict[str, Any]:
    """Parse the text `wrk --latency` prints into numbers.

    Returns a dict with:
      requests (int), duration_s (float), bytes_read (int), requests_per_sec (float),
      latency_ms ({"50": ..., "75": ..., "90": ..., "99": ...} in milliseconds, only the
      percentiles present), p50_ms and p99_ms (float or None), socket_errors
      ({"connect", "read", "write", "timeout"}, all 0 when wrk printed no such line),
      errors (their sum) and non_2xx_3xx (int, 0 when absent).
    Raises ValueError when the text has no request total or no Requests/sec line (wrk failed).
    """
    total = _TOTAL.search(text)
    rps = _RPS.search(text)
    if total is None or rps is None:
        raise ValueError("not wrk output: no request total or Requests/sec line")
    latency = {
        _percentile_key(m[1]): float(m[2]) * _UNITS_TIME[m[3]] for m in _LATENCY_ROW.finditer(text)
    }
    sock = _SOCKET_ERRORS.search(text)
    socket_errors = dict.fromkeys(("connect", "read", "write", "timeout"), 0)
    if sock is not None:
        socket_errors = dict(zip(socket_errors, map(int, sock.groups()), strict=True))
    non_2xx = _NON_2XX.search(text)
    return {
        "requests": int(total[1]),
        "duration_s": float(total[2]) * _UNITS_TIME[total[3]] / 1e3,
        "bytes_read": round(float(total[4]) * _UNITS_SIZE[total[5]]),
        "requests_per_sec": float(rps[1]),
        "latency_ms": latency,
        "p50_ms": latency.get("50"),
        "p99_ms": latency.get("99"),
        "socket_errors": socket_errors,
        "errors": sum(socket_errors.values()),
        "non_2xx_3xx": int(non_2xx[1]) if non_2xx else 0,
    }


def _percentile_key(text: str) -> str:
    value = float(text)
    return str(int(value)) if value.is_integer() else str(value)


# --------------------------------------------------------------------------- /proc readers


ProcKey = tuple[int, int]  # (pid, start time in clock ticks): a PID the kernel cannot reuse


def _read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name, or None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses


def _start_time(pid: int) -> int | None:
    fields = _read_stat(pid)
    return int(fields[19]) if fields else None  # field 22 of stat; 3 is fields[0]


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids.extend(int(c) for c in (task / "children").read_text().split())
    return kids


def process_tree(pid: int) -> list[int]:
    """PID and all its descendants alive now (children of every thread, recursively)."""
    seen: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.append(current)
        stack.extend(_children(current))
    return seen


def tree_cpu_ticks(pid: int) -> dict[ProcKey, int]:
    """utime+stime+cutime+cstime in clock ticks of each process of the tree rooted at PID.

    /proc/PID/stat counts all threads of a process; cutime/cstime hold the time of children
    the process has reaped, so a worker that exits mid-run is not lost from the sum.
    """
    ticks: dict[ProcKey, int] = {}
    for member in process_tree(pid):
        fields = _read_stat(member)
        if fields is None:
            continue
        # stat fields 14-17 (utime, stime, cutime, cstime) are fields[11:15] here.
        ticks[(member, int(fields[19]))] = sum(int(v) for v in fields[11:15])
    return ticks


def tree_rss_bytes(pid: int) -> int:
    """VmRSS summed over the process tree rooted at PID (shared pages count once per process)."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Server:
    """How to start one server: `argv(interface, app_target, port)`."""

    name: str
    argv: Callable[[str, str, int], list[str]]
    path: tuple[str, ...] = ()  # put first on the server's PYTHONPATH


def _rootserve(interface: str, app: str, port: int) -> list[str]:
    return [
        str(BIN / "rootserve"), app, "--host", HOST, "--port", str(port),
        "--interface", interface, "--no-access-log", "--log-level", "warning",
        "--app-dir", str(ROOT),
    ]  # fmt: skip


def _uvicorn(interface: str, app: str, port: int) -> list[str]:
    return [
        str(PEER_BIN / "uvicorn"), app, "--host", HOST, "--port", str(port),
        "--http", "httptools", "--loop", "uvloop", "--no-access-log", "--log-level", "warning",
        "--workers", "1", "--app-dir", str(ROOT),
    ]  # fmt: skip


def _hypercorn(interface: str, app: str, port: int) -> list[str]:
    # No --access-logfile means no access log.
    return [
        str(PEER_BIN / "hypercorn"), app, "--bind", f"{HOST}:{port}", "--workers", "1",
        "--worker-class", "uvloop", "--log-level", "warning",
    ]  # fmt: skip


def _granian(interface: str, app: str, port: int) -> list[str]:
    argv = [
        str(PEER_BIN / "granian"), "--interface", interface, "--host", HOST, "--port", str(port),
        "--workers", "1", "--runtime-threads", "1", "--no-access-log",
        "--log-level", "warning", "--working-dir", str(ROOT),
    ]  # fmt: skip
    if interface == "asgi":
        argv += ["--loop", "uvloop"]
    return [*argv, app]


def _gunicorn(interface: str, app: str, port: int) -> list[str]:
    # No --access-logfile means no access log.
    return [
        str(PEER_BIN / "gunicorn"), "-k", "gthread", "--threads", "4", "-w", "1",
        "--bind", f"{HOST}:{port}", "--log-level", "warning", "--chdir", str(ROOT), app,
    ]  # fmt: skip


def _gunicorn_asgi(interface: str, app: str, port: int) -> list[str]:
    # gunicorn's own ASGI worker (`-k asgi`, gunicorn.workers.gasgi) on uvloop.
    return [
        str(PEER_BIN / "gunicorn"), "-k", "asgi", "--asgi-loop", "uvloop", "-w", "1",
        "--bind", f"{HOST}:{port}", "--log-level", "warning", "--chdir", str(ROOT), app,
    ]  # fmt: skip


def _floor(interface: str, app: str, port: int) -> list[str]:
    # Ignores the app: canned bytes for every request (benchmarks/floor.py).
    return [str(BIN / "python"), str(BENCH_DIR / "floor.py"), "--host", HOST, "--port", str(port)]


SERVERS = {
    s.name: s
    for s in (
        Server("rootserve", _rootserve),
        Server("rootserve-metrics", _rootserve),  # with --metrics-bind: what metrics cost
        Server("rootserve-trace", _rootserve),  # with --trace: what tracing on costs
        # --compiled: the mypyc build of the hot modules (make compiled), same source
        Server("rootserve-compiled", _rootserve, path=(str(COMPILED_TREE),)),
        Server("uvicorn", _uvicorn),
        Server("uvicorn-wsproto", _uvicorn),
        Server("hypercorn", _hypercorn),
        Server("granian", _granian),
        Server("gunicorn", _gunicorn),
        Server("gunicorn-asgi", _gunicorn_asgi),
        Server("floor", _floor),
    )
}


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    interface: str  # "asgi" or "wsgi"
    app: str  # import target, relative to ROOT
    peers: tuple[str, ...]  # always compared against rootserve
    extra_peers: tuple[str, ...] = ()  # only with --all-peers
    wsgi: bool = False  # in the default run only with --wsgi
    lua: str | None = None  # wrk script in benchmarks/
    probe_method: str = "GET"
    probe_body: bytes = b""
    expect_body: bytes | None = None  # None: the body must equal probe_body
    expect_json: Any = None  # when set, the body parsed as JSON must equal this instead

    ws: bool = False  # a WebSocket scenario: loaded by ws_client.py, not wrk
    unit: str = "req"  # what one counted operation is: a request, or a message
    server_args: tuple[tuple[str, tuple[str, ...]], ...] = ()  # extra argv by server name

    def servers(self, all_peers: bool, compiled: bool = False) -> list[str]:
        mine = [BASELINE, "rootserve-compiled"] if compiled and not self.ws else [BASELINE]
        return [*mine, *self.peers, *(self.extra_peers if all_peers else ())]

    def extra_args(self, server: str) -> list[str]:
        return [arg for name, args in self.server_args if name == server for arg in args]


ECHO_PROBE = bytes(range(256)) * 256  # 64 KiB, every byte value
WS_MESSAGE_BYTES = 16
WS_CONNECTIONS = 50

SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "asgi-hello",
            "ASGI GET / -> 200 'Hello, world!' (13 bytes), keep-alive",
            "asgi",
            "benchmarks.apps.asgi_hello:app",
            peers=("uvicorn", "floor"),
            extra_peers=("hypercorn", "granian", "gunicorn-asgi"),
            expect_body=b"Hello, world!",
        ),
        Scenario(
            "asgi-echo-64k",
            "ASGI POST / with a 64 KiB body, echoed back, keep-alive",
            "asgi",
            "benchmarks.apps.asgi_echo:app",
            peers=("uvicorn",),
            extra_peers=("hypercorn", "granian", "gunicorn-asgi"),
            lua="post_64k.lua",
            probe_method="POST",
            probe_body=ECHO_PROBE,
        ),
        Scenario(
            "asgi-fastapi-json",
            "FastAPI GET / -> 200 JSON, a dict of 10 fields (benchmarks/apps/payload.py)",
            "asgi",
            "benchmarks.apps.fastapi_json:app",
            peers=("uvicorn",),
            extra_peers=("hypercorn", "granian", "gunicorn-asgi"),
            expect_json=PAYLOAD,
        ),
        Scenario(
            "asgi-hello-metrics",
            "ASGI GET / -> 200 'Hello, world!', rootserve without and with --metrics-bind",
            "asgi",
            "benchmarks.apps.asgi_hello:app",
            peers=("rootserve-metrics",),
            expect_body=b"Hello, world!",
            server_args=(("rootserve-metrics", ("--metrics-bind", f"{HOST}:0")),),
        ),
        Scenario(
            "asgi-hello-trace",
            "ASGI GET / -> 200 'Hello, world!', rootserve without and with --trace (each "
            "block made whole, then dropped by a NullHandler: all of tracing but the write)",
            "asgi",
            "benchmarks.apps.asgi_hello:app",
            peers=("rootserve-trace",),
            expect_body=b"Hello, world!",
            server_args=(
                (
                    "rootserve-trace",
                    ("--trace", "--log-config", str(ROOT / "benchmarks/trace_to_nothing.json")),
                ),
            ),
        ),
        Scenario(
            "wsgi-hello",
            "WSGI GET / -> 200 'Hello, world!' (13 bytes), keep-alive",
            "wsgi",
            "benchmarks.apps.wsgi_hello:app",
            peers=("gunicorn", "granian", "floor"),
            wsgi=True,
            expect_body=b"Hello, world!",
        ),
        Scenario(
            "wsgi-echo-64k",
            "WSGI POST / with a 64 KiB body, echoed back, keep-alive",
            "wsgi",
            "benchmarks.apps.wsgi_echo:app",
            peers=("gunicorn", "granian"),
            wsgi=True,
            lua="post_64k.lua",
            probe_method="POST",
            probe_body=ECHO_PROBE,
        ),
        Scenario(
            "wsgi-flask-json",
            "Flask GET / -> 200 JSON, a dict of 10 fields (benchmarks/apps/payload.py)",
            "wsgi",
            "benchmarks.apps.flask_json:app",
            peers=("gunicorn", "granian"),
            wsgi=True,
            expect_json=PAYLOAD,
        ),
        Scenario(
            "ws-echo",
            f"ASGI WebSocket echo, {WS_MESSAGE_BYTES}-byte text messages, one in flight per "
            "connection",
            "asgi",
            "benchmarks.apps.asgi_ws_echo:app",
            peers=("uvicorn",),
            extra_peers=("uvicorn-wsproto", "hypercorn"),
            expect_body=b"Hello, world!",
            ws=True,
            unit="msg",
            server_args=(
                ("uvicorn", ("--ws", "websockets-sansio")),
                ("uvicorn-wsproto", ("--ws", "wsproto")),
            ),
        ),
    )
}


# --------------------------------------------------------------------------- one run


@dataclass
class Result:
    server: str
    ok: bool = False
    error: str | None = None  # why there are no numbers
    flags: list[str] = field(default_factory=list)  # numbers exist but are suspect
    command: list[str] = field(default_factory=list)
    startup_s: float | None = None
    requests: int | None = None
    requests_per_sec: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    cpu_s: float | None = None
    cpu_us_per_req: float | None = None
    # The server's CPU seconds over the measured seconds: well under 1 (its one core) means
    # the client, not the server, set the pace (the report calls such a row client-bound).
    cpu_share: float | None = None
    rss_mib: float | None = None
    socket_errors: dict[str, int] = field(default_factory=dict)
    non_2xx_3xx: int = 0


@dataclass
class Settings:
    duration: int
    warmup: int
    connections: int
    server_cpu: int | None
    client_cpu: int | None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    """A port nothing listens on now (bound to 0 and closed; the server binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def pick_cpus() -> tuple[int | None, int | None]:
    """The first two CPUs this process may use: one for the server, one for wrk."""
    if shutil.which("taskset") is None:
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


class Running:
    """A server process started here, with its log file; `stop()` ends it and its children."""

    def __init__(self, argv: list[str], log_path: Path, path: tuple[str, ...] = ()) -> None:
        self.log_path = log_path
        # ROOT on sys.path so every server imports `benchmarks.apps...` the same way.
        pythonpath = [*path, str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = os.environ | {"PYTHONPATH": os.pathsep.join(pythonpath), "PYTHONUNBUFFERED": "1"}
        with open(log_path, "wb") as out:
            # A new session: a Ctrl-C in the terminal reaches only this driver, which then
            # stops the server itself, by PID.
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.proc.pid

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace").rstrip()
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        # Remember the descendants (with start times) before the parent goes away, so any a
        # killed parent leaves behind can still be stopped, and no reused PID is touched.
        tree = [(p, _start_time(p)) for p in process_tree(self.pid)[1:]]
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log(f"    pid {self.pid} ignored SIGTERM for {STOP_TIMEOUT:.0f}s: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        leftovers = [(p, t) for p, t in tree if t is not None and _start_time(p) == t]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid, start in leftovers:
                if _start_time(pid) == start:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, sig)
            deadline = time.monotonic() + STOP_TIMEOUT
            while time.monotonic() < deadline and any(_start_time(p) == t for p, t in leftovers):
                time.sleep(0.05)


def wait_ready(running: Running, port: int, scenario: Scenario, deadline: float) -> str | None:
    """Poll until the server accepts a TCP connection and answers the probe correctly.

    Returns None when ready, else why not. A wrong answer is returned as an error too.
    """
    connected = False
    last_error = "no connection accepted"
    while time.monotonic() < deadline:
        if running.proc.poll() is not None:
            return f"exited with status {running.proc.returncode} before it was ready"
        remaining = max(0.05, deadline - time.monotonic())
        if not connected:
            try:
                with socket.create_connection((HOST, port), timeout=min(0.5, remaining)):
                    connected = True
            except OSError as exc:
                last_error = f"connect: {exc}"
                time.sleep(0.05)
                continue
        try:
            status, body = probe(port, scenario, timeout=remaining)
        except (OSError, http.client.HTTPException) as exc:
            last_error = f"probe: {exc!r}"
            time.sleep(0.05)
            continue
        expected = scenario.probe_body if scenario.expect_body is None else scenario.expect_body
        if scenario.expect_json is not None and status == 200 and _json_equal(body, scenario):
            return None
        if status != 200 or body != expected or scenario.expect_json is not None:
            return (
                f"wrong answer to {scenario.probe_method} /: status {status}, "
                f"{len(body)}-byte body {body[:40]!r} (expected 200 with {len(expected)} bytes)"
            )
        return None
    return f"not ready within {READY_TIMEOUT:.0f}s ({last_error})"


def _json_equal(body: bytes, scenario: Scenario) -> bool:
    try:
        return bool(json.loads(body) == scenario.expect_json)
    except ValueError:
        return False


def probe(port: int, scenario: Scenario, timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/octet-stream"} if scenario.probe_body else {}
        conn.request(scenario.probe_method, "/", body=scenario.probe_body or None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wrk_argv(port: int, seconds: int, scenario: Scenario, settings: Settings) -> list[str]:
    argv = ["wrk", "-t1", f"-c{settings.connections}", f"-d{seconds}s", "--latency"]
    if scenario.lua:
        argv += ["-s", str(BENCH_DIR / scenario.lua)]
    return pinned(settings.client_cpu, [*argv, f"http://{HOST}:{port}/"])


def run_wrk(argv: list[str], seconds: int) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + WRK_GRACE, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited {done.returncode}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def run_ws_client(
    port: int, settings: Settings, server_pid: int
) -> tuple[dict[str, Any], dict[ProcKey, int], dict[ProcKey, int]]:
    """Run ws_client.py against the server; read the server's CPU ticks when the client
    says its measured window starts and ends. Returns stats shaped like parse_wrk's."""
    argv = pinned(
        settings.client_cpu,
        [
            sys.executable, str(BENCH_DIR / "ws_client.py"), "--port", str(port),
            "--connections", str(WS_CONNECTIONS), "--size", str(WS_MESSAGE_BYTES),
            "--duration", str(settings.duration), "--warmup", str(max(settings.warmup, 1)),
        ],
    )  # fmt: skip
    before: dict[ProcKey, int] = {}
    after: dict[ProcKey, int] = {}
    lines: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:  # the client bounds every wait of its own
            if line == "start\n":
                before = tree_cpu_ticks(server_pid)
            elif line == "end\n":
                after = tree_cpu_ticks(server_pid)
            else:
                lines.append(line)
        errors = proc.stderr.read()
        proc.wait(WRK_GRACE)
    if proc.returncode != 0 or not before or not after or not lines:
        raise RuntimeError(f"ws_client exited {proc.returncode}: {errors.strip()}")
    out = json.loads(lines[-1])
    return (
        {
            "requests": out["messages"],
            "requests_per_sec": out["msg_per_sec"],
            "p50_ms": out["p50_ms"],
            "p99_ms": out["p99_ms"],
            "latency_ms": {"50": out["p50_ms"], "99": out["p99_ms"]},
            "socket_errors": {},
            "errors": out["errors"],
            "non_2xx_3xx": 0,
        },
        before,
        after,
    )


def bench_server(
    name: str,
    scenario: Scenario,
    settings: Settings,
    tmp: Path,
    command: Callable[[int], list[str]] | None = None,
    ready: Callable[[Running, float], str | None] | None = None,
) -> Result:
    """Start, probe, warm up, measure and stop one server. `command(port)` replaces the
    argv from SERVERS[name]; `ready(running, deadline)`, once the probe answers, waits for
    more (e.g. every worker) and returns None, or why the server is not ready."""
    result = Result(server=name)
    if command is None:
        argv = SERVERS[name].argv(scenario.interface, scenario.app, port := free_port())
        argv += scenario.extra_args(name)
    else:
        argv = command(port := free_port())
    result.command = pinned(settings.server_cpu, argv)
    if not Path(argv[0]).exists():
        result.error = f"not installed: {argv[0]} does not exist"
        log(f"  {name}: {result.error}")
        return result
    log(f"  {name}: starting on port {port}")
    started = time.monotonic()
    try:
        path = SERVERS[name].path if name in SERVERS else ()
        running = Running(result.command, tmp / f"{scenario.name}-{name}.log", path)
    except OSError as exc:
        result.error = f"could not start: {exc}"
        log(f"  {name}: {result.error}")
        return result
    try:
        problem = wait_ready(running, port, scenario, started + READY_TIMEOUT)
        if problem is None and ready is not None:
            problem = ready(running, started + READY_TIMEOUT)
        if problem is not None:
            tail = running.log_tail().splitlines()
            # The last line of the server's own output usually names the cause.
            result.error = f"{problem}: {tail[-1].strip()}" if tail else problem
            log(f"  {name}: {problem}")
            for tail_line in tail:
                log(f"    | {tail_line}")
            return result
        result.startup_s = time.monotonic() - started
        log(f"  {name}: ready in {result.startup_s:.2f}s, pid {running.pid}; warming up")
        if scenario.ws:
            log(f"  {name}: {WS_CONNECTIONS} WebSocket clients, measuring for {settings.duration}s")
            stats, before, after = run_ws_client(port, settings, running.pid)
        else:
            if settings.warmup > 0:
                run_wrk(wrk_argv(port, settings.warmup, scenario, settings), settings.warmup)
            log(f"  {name}: measuring for {settings.duration}s")
            before = tree_cpu_ticks(running.pid)
            argv = wrk_argv(port, settings.duration, scenario, settings)
            stats = parse_wrk(run_wrk(argv, settings.duration))
            after = tree_cpu_ticks(running.pid)
        rss = tree_rss_bytes(running.pid)
        if running.proc.poll() is not None:
            result.flags.append(f"server exited (status {running.proc.returncode}) during run")
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
        result.error = f"measurement failed: {exc}"
        log(f"  {name}: {result.error}")
        return result
    finally:
        running.stop()
    cpu_s = (sum(after.values()) - sum(before.values())) / CLK_TCK
    result.ok = True
    result.requests = stats["requests"]
    result.requests_per_sec = stats["requests_per_sec"]
    result.p50_ms = stats["p50_ms"]
    result.p99_ms = stats["p99_ms"]
    result.latency_ms = stats["latency_ms"]
    result.socket_errors = stats["socket_errors"]
    result.non_2xx_3xx = stats["non_2xx_3xx"]
    result.cpu_s = cpu_s
    result.cpu_us_per_req = cpu_s * 1e6 / stats["requests"] if stats["requests"] else None
    measured_s = stats.get("duration_s") or settings.duration
    result.cpu_share = cpu_s / measured_s if measured_s else None
    result.rss_mib = rss / 1024**2
    if stats["errors"]:
        errors = ", ".join(f"{k} {v}" for k, v in stats["socket_errors"].items() if v)
        result.flags.append(f"socket errors: {errors or stats['errors']}")
    if stats["non_2xx_3xx"]:
        result.flags.append(f"{stats['non_2xx_3xx']} non-2xx/3xx responses")
    if not stats["requests"]:
        result.flags.append("no request completed")
    unit = scenario.unit
    log(
        f"  {name}: {stats['requests_per_sec']:.0f} {unit}/s, "
        f"{_fmt(result.cpu_us_per_req, '.1f')} us CPU/{unit}"
        + (f"  [FLAGGED: {'; '.join(result.flags)}]" if result.flags else "")
    )
    return result


# --------------------------------------------------------------------------- report


def ratios(results: Sequence[Result]) -> dict[str, dict[str, float | None]]:
    """rootserve relative to each peer: req/s ratio (>1 is faster), CPU ratio (<1 is leaner)."""
    base = next((r for r in results if r.server == BASELINE and r.ok), None)
    out: dict[str, dict[str, float | None]] = {}
    for peer in results:
        if peer.server == BASELINE:
            continue
        rps = cpu = None
        if base is not None and peer.ok:
            if base.requests_per_sec and peer.requests_per_sec:
                rps = base.requests_per_sec / peer.requests_per_sec
            if base.cpu_us_per_req and peer.cpu_us_per_req:
                cpu = base.cpu_us_per_req / peer.cpu_us_per_req
        out[peer.server] = {"req_per_sec": rps, "cpu_per_req": cpu}
    return out


def median_result(runs: list[Result]) -> Result:
    """One server's rounds as one row: the median of each number over the rounds that ran
    (the run with the median CPU per request gives the command, RSS and latency table)."""
    ok = [r for r in runs if r.ok]
    if len(runs) == 1 or not ok:
        return runs[0]
    ok.sort(key=lambda r: r.cpu_us_per_req or 0.0)
    merged = replace(ok[len(ok) // 2])
    merged.flags = [flag for r in runs for flag in r.flags]
    for name in ("requests_per_sec", "p50_ms", "p99_ms", "cpu_us_per_req", "cpu_share"):
        values = [getattr(r, name) for r in ok if getattr(r, name) is not None]
        setattr(merged, name, statistics.median(values) if values else None)
    return merged


def render_rounds(per_round: list[dict[str, dict[str, float | None]]]) -> str:
    """The CPU ratio of each round, peer by peer: how much the machine's noise moved it."""
    lines = []
    for peer in per_round[0]:
        cpu = [r[peer]["cpu_per_req"] for r in per_round if r.get(peer)]
        shown = " ".join(_fmt(c, ".2f") for c in cpu)
        known = [c for c in cpu if c is not None]
        middle = f", median {statistics.median(known):.2f}x" if known else ""
        lines.append(f"rootserve/{peer} CPU ratio by round: {shown}{middle}")
    return "\n".join(lines)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def align(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Header, rule and rows as lines of columns, the ones numbered in `right` right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return " | ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), "-+-".join("-" * w for w in widths), *[line(row) for row in rows]]


def render_table(scenario: Scenario, results: Sequence[Result]) -> str:
    unit = scenario.unit
    header = ["server", f"{unit}/s", "p50 ms", "p99 ms", f"CPU us/{unit}", "RSS MiB", "ratio"]
    rel = ratios(results)
    base_ok = any(r.server == BASELINE and r.ok for r in results)
    rows: list[list[str]] = []
    for r in results:
        if r.server == BASELINE:
            ratio = "-" if r.ok else "did not run"
        elif not r.ok:
            ratio = "did not run"
        elif not base_ok:
            ratio = f"n/a ({BASELINE} did not run)"
        else:
            q = rel[r.server]
            ratio = (
                f"{BASELINE}/{r.server} {unit}/s {_fmt(q['req_per_sec'], '.2f')}x, "
                f"CPU {_fmt(q['cpu_per_req'], '.2f')}x"
            )
        name = r.server + (" !" if r.flags else "")
        rows.append(
            [
                name,
                _fmt(r.requests_per_sec, ",.0f"),
                _fmt(r.p50_ms, ".2f"),
                _fmt(r.p99_ms, ".2f"),
                _fmt(r.cpu_us_per_req, ".1f"),
                _fmt(r.rss_mib, ".1f"),
                ratio,
            ]
        )
    out = [f"== {scenario.name}: {scenario.description}", *align(header, rows, {1, 2, 3, 4, 5})]
    for r in results:
        if r.error:
            out.append(f"   {r.server}: did not run: {r.error}")
        for flag in r.flags:
            out.append(f" ! {r.server}: {flag}")
    return "\n".join(out)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return "unknown"


def wrk_version() -> str:
    try:
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (done.stdout + done.stderr).strip().splitlines()[0] if done.stdout + done.stderr else ""


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark rootserve against uvicorn, gunicorn, granian and hypercorn.",
    )
    parser.add_argument(
        "--duration", type=int, default=8, metavar="S", help="seconds per measured run (8)"
    )
    parser.add_argument("--quick", action="store_true", help="3-second runs (overrides --duration)")
    parser.add_argument(
        "--warmup", type=int, default=1, metavar="S", help="seconds of warm-up load (1)"
    )
    parser.add_argument(
        "--connections", type=int, default=64, metavar="N", help="wrk connections (64)"
    )
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help=f"scenarios to run, comma-separated: {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--wsgi", action="store_true", help="add the WSGI scenarios to the default run"
    )
    parser.add_argument(
        "--ws",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the WebSocket scenario, ws-echo (default: on)",
    )
    parser.add_argument(
        "--all-peers",
        action="store_true",
        help="also run the optional peers (hypercorn, granian, gunicorn-asgi; uvicorn with "
        "wsproto for ws-echo)",
    )
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="also run rootserve's mypyc build (make compiled) on the HTTP scenarios",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="measure every server N times, taking turns, and report the medians "
        "(3; 1 with --quick)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help=f"where to write the results ({DEFAULT_JSON.relative_to(ROOT)})",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 3
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.duration < 1 or args.warmup < 0 or args.connections < 1 or args.rounds < 1:
        parser.error(
            "--duration, --connections and --rounds must be positive, --warmup not negative"
        )
    if args.compiled and not COMPILED_TREE.is_dir():
        parser.error(f"--compiled: no {COMPILED_TREE.relative_to(ROOT)}; run `make compiled`")
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown:
            parser.error(f"unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        args.scenarios = names
    else:
        args.scenarios = [
            s.name
            for s in SCENARIOS.values()
            if (args.wsgi or not s.wsgi) and (args.ws or not s.ws)
        ]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        log("wrk is not installed (apt-get install wrk); nothing measured")
        return 2
    peers.ensure(log)
    server_cpu, client_cpu = pick_cpus()
    if server_cpu is None:
        log("warning: fewer than 2 usable CPUs or no taskset: server and wrk are NOT pinned")
    settings = Settings(args.duration, args.warmup, args.connections, server_cpu, client_cpu)
    log(
        f"scenarios: {', '.join(args.scenarios)}; {settings.duration}s runs after "
        f"{settings.warmup}s warm-up, {settings.connections} connections; "
        f"server on CPU {server_cpu}, wrk on CPU {client_cpu}"
    )
    report: dict[str, Any] = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "wrk": wrk_version(),
            "cpu_model": cpu_model(),
        },
        "rootserve": metadata.version("rootserve"),
        "peers": peers.versions(),
        "rounds": args.rounds,
        "settings": asdict(settings) | {"threads": 1, "host": HOST},
        "cpu_per_req": "delta of utime+stime+cutime+cstime over the server's process tree "
        "during the measured wrk run, divided by the requests wrk completed",
        "scenarios": {},
    }
    flagged = False
    with tempfile.TemporaryDirectory(prefix="rootserve-bench-") as tmp:
        for name in args.scenarios:
            scenario = SCENARIOS[name]
            log(f"[{name}] {scenario.description}")
            rounds = []
            for number in range(args.rounds):
                if args.rounds > 1:
                    log(f"  round {number + 1} of {args.rounds}")
                rounds.append(
                    [
                        bench_server(server, scenario, settings, Path(tmp))
                        for server in scenario.servers(args.all_peers, args.compiled)
                    ]
                )
            results = [median_result(list(runs)) for runs in zip(*rounds, strict=True)]
            flagged |= any(r.flags for r in results)
            table = render_table(scenario, results)
            print(table, flush=True)
            per_round = [ratios(r) for r in rounds]
            if args.rounds > 1:
                print(render_rounds(per_round), flush=True)
            print(flush=True)
            report["scenarios"][name] = {
                "description": scenario.description,
                "interface": scenario.interface,
                "app": scenario.app,
                "load": "benchmarks/ws_client.py" if scenario.ws else "wrk",
                "wrk_script": scenario.lua,
                "servers": [asdict(r) for r in results],
                "ratios_vs_peers": ratios(results),
                "rounds": [[asdict(r) for r in round_] for round_ in rounds],
                "ratios_per_round": per_round,
            }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    log(f"results written to {args.json}")
    if flagged:
        log("some servers are flagged (!): their numbers include errors or non-2xx answers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
