"""What a server costs before any load: start-up time, idle memory, memory per idle connection.

Run from the repository root (benchmarks/performance.py runs it for docs/performance.md):

    .venv/bin/python benchmarks/footprint.py                 # every row of ROWS
    .venv/bin/python benchmarks/footprint.py --only uvicorn --connections 1000

For each row (a server of run.SERVERS with one worker, serving the hello app of its
interface), pinned to the server CPU as in run.py:

1. **Start-up**: STARTS times, spawn the server and send `GET /` every few milliseconds
   until the first 200; the time from spawn to that answer, median of the STARTS tries.
   Python's imports, the app's import and binding are all inside it.
2. **Idle RSS**: after the last start, one second of rest, then VmRSS summed over the
   process tree (run.tree_rss_bytes; a master and its worker both count).
3. **RSS with N idle keep-alive connections** (5,000 by default): N connections, each
   sends one `GET /`, reads the answer and then stays open doing nothing; one second of
   rest, RSS again. Connections are opened CONCURRENCY at a time so no listen backlog
   overflows. The soft limit on open files is raised to the hard one (resource.setrlimit)
   here and so in the server, which inherits it, and every server's keep-alive timeout
   and connection cap are lifted (KEEP_OPEN), or they would close or refuse them. KiB per
   connection = (RSS with them - idle RSS) / the connections still open at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import peers
from benchmarks.run import (
    HOST,
    READY_TIMEOUT,
    ROOT,
    SERVERS,
    Running,
    free_port,
    log,
    pick_cpus,
    pinned,
    tree_rss_bytes,
)

STARTS = 5
IDLE_CONNECTIONS = 5000
CONCURRENCY = 200  # connections being opened at once
SETTLE_S = 1.0  # rest before each RSS reading: lazy allocations and closes land first
POLL_S = 0.005  # between start-up probes
REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
DEFAULT_JSON = ROOT / "build" / "bench" / "latest-footprint.json"

# (label, server, interface, app). The hello apps: every server answers the same 13 bytes.
ASGI_APP = "benchmarks.apps.asgi_hello:app"
WSGI_APP = "benchmarks.apps.wsgi_hello:app"
ROWS = (
    ("rootserve (ASGI)", "rootserve", "asgi", ASGI_APP),
    ("uvicorn", "uvicorn", "asgi", ASGI_APP),
    ("hypercorn", "hypercorn", "asgi", ASGI_APP),
    ("granian (ASGI)", "granian", "asgi", ASGI_APP),
    ("gunicorn-asgi", "gunicorn-asgi", "asgi", ASGI_APP),
    ("rootserve (WSGI)", "rootserve", "wsgi", WSGI_APP),
    ("gunicorn (gthread)", "gunicorn", "wsgi", WSGI_APP),
    ("granian (WSGI)", "granian", "wsgi", WSGI_APP),
    ("floor", "floor", "asgi", ASGI_APP),
)
# Options that let every server hold the idle connections for the whole measurement.
KEEP_OPEN = {
    "rootserve": ("--timeout-keep-alive", "0"),
    "uvicorn": ("--timeout-keep-alive", "600"),
    "hypercorn": ("--keep-alive", "600"),
    "gunicorn": ("--keep-alive", "600", "--worker-connections", "20000"),
    "gunicorn-asgi": ("--keep-alive", "600", "--worker-connections", "20000"),
    # Its concurrency cap (--backpressure) defaults to the backlog, 1024.
    "granian": ("--backlog", "16384"),
}


@dataclass
class Footprint:
    label: str
    command: list[str] = field(default_factory=list)
    error: str | None = None
    startup_s: list[float] = field(default_factory=list)
    startup_median_s: float | None = None
    idle_rss_kib: int | None = None
    connections_asked: int = 0
    connections_open: int | None = None
    loaded_rss_kib: int | None = None
    kib_per_connection: float | None = None


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


async def _first_200(port: int, running: Running, deadline: float) -> float | None:
    """Poll GET / until a 200 arrives; the monotonic time it arrived, or None."""
    while time.monotonic() < deadline and running.proc.poll() is None:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(POLL_S)  # noqa: sleep-ok (the server is not listening yet)
            continue
        try:
            writer.write(REQUEST)
            line = await asyncio.wait_for(reader.readline(), deadline - time.monotonic())
            if line.split(b" ")[1:2] == [b"200"]:
                return time.monotonic()
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()
        await asyncio.sleep(POLL_S)  # noqa: sleep-ok (answered, but not yet with a 200)
    return None


Idle = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _one_idle(port: int, gate: asyncio.Semaphore) -> Idle | None:
    """One connection that made one request, read its answer, and is kept open."""
    async with gate:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            return None
        try:
            writer.write(REQUEST)
            await asyncio.wait_for(reader.readuntil(b"Hello, world!"), READY_TIMEOUT)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            writer.close()
            return None
    return reader, writer


async def _measure(
    command_for: Callable[[int], list[str]], tmp: Path, result: Footprint, count: int
) -> None:
    for attempt in range(STARTS):
        port = free_port()
        result.command = command = command_for(port)
        started = time.monotonic()
        running = Running(command, tmp / f"{result.label}-{attempt}.log")
        try:
            answered = await _first_200(port, running, started + READY_TIMEOUT)
            if answered is None:
                result.error = f"no 200 within {READY_TIMEOUT:.0f}s: {running.log_tail(2)}"
                return
            result.startup_s.append(answered - started)
            if attempt < STARTS - 1:
                continue
            await asyncio.sleep(SETTLE_S)  # noqa: sleep-ok (idle means after start-up settles)
            result.idle_rss_kib = tree_rss_bytes(running.pid) // 1024
            gate = asyncio.Semaphore(CONCURRENCY)
            opened = await asyncio.gather(*(_one_idle(port, gate) for _ in range(count)))
            idle = [pair for pair in opened if pair is not None]
            await asyncio.sleep(SETTLE_S)  # noqa: sleep-ok (let closes by the server arrive)
            result.loaded_rss_kib = tree_rss_bytes(running.pid) // 1024
            result.connections_open = sum(1 for reader, _ in idle if not reader.at_eof())
            for _, writer in idle:
                writer.close()
        finally:
            running.stop()
    result.startup_median_s = statistics.median(result.startup_s)
    if result.connections_open:
        grown = (result.loaded_rss_kib or 0) - (result.idle_rss_kib or 0)
        result.kib_per_connection = grown / result.connections_open


def _command(server: str, interface: str, app: str, cpu: int | None) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        argv = SERVERS[server].argv(interface, app, port)
        return pinned(cpu, [*argv, *KEEP_OPEN.get(server, ())])

    return command


def footprint(rows: list[tuple[str, str, str, str]], count: int) -> list[Footprint]:
    server_cpu, _ = pick_cpus()
    limit = raise_fd_limit()
    if limit < count + 100:
        log(f"warning: open-file limit {limit} is below {count} connections; fewer will open")
    results = []
    with tempfile.TemporaryDirectory(prefix="rootserve-footprint-") as tmp:
        for label, server, interface, app in rows:
            result = Footprint(label, connections_asked=count)
            log(f"  {label}: {STARTS} starts, then {count} idle connections")
            asyncio.run(
                _measure(_command(server, interface, app, server_cpu), Path(tmp), result, count)
            )
            log(f"  {label}: {_summary(result)}")
            results.append(result)
    return results


def _summary(r: Footprint) -> str:
    if r.error:
        return f"did not run: {r.error}"
    return (
        f"start {r.startup_median_s:.3f}s, idle {r.idle_rss_kib} KiB, "
        f"{r.connections_open}/{r.connections_asked} open: {r.loaded_rss_kib} KiB, "
        f"{r.kib_per_connection or 0:.1f} KiB/conn"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=IDLE_CONNECTIONS, metavar="N")
    parser.add_argument("--only", metavar="LABEL[,LABEL]", help="rows whose label starts so")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH")
    args = parser.parse_args(argv)
    peers.ensure(log)
    rows = list(ROWS)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        rows = [r for r in rows if any(r[0].startswith(w) for w in wanted)]
    results = footprint(rows, args.connections)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    for r in results:
        print(f"{r.label}: {_summary(r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
