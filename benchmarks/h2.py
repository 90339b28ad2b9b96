"""ASGI GET hello over HTTP/2 (h2c, prior knowledge) with h2load: rootserve, hypercorn and
granian, one worker each, in one run, as ratios to rootserve.

Run from the repository root (`make bench` runs it after run.py, with the same BENCH_ARGS):

    .venv/bin/python benchmarks/h2.py                # 3 interleaved rounds of 8 s
    .venv/bin/python benchmarks/h2.py --quick        # one round of 3 s

It reads run.py's flags with run.py's own parser, as workers.py does: --duration, --quick,
--warmup, --connections, --rounds and --json apply (the JSON goes next to run.py's, as
`<name>-h2.json`); --only, which picks run.py's scenarios, skips this benchmark.

The load is h2load (Debian's nghttp2-client) instead of wrk: --connections streams in flight
at all times, as STREAMS concurrent streams on each of --connections / STREAMS connections
(64 streams on 4 connections by default), one thread. Each server is started, pinned with
taskset, measured (the CPU time of its whole process tree during the measured h2load run)
and stopped as run.py does it, with run.py's own pieces; it is ready once h2load gets a 200
for one request. h2load reports no percentiles: the latency column is its mean time per
request. h2c by prior knowledge is how each server is asked for HTTP/2 on plain TCP:
rootserve with `--http auto` (HTTP/1.1 and HTTP/2 on one listener), hypercorn by default
(it reads the client's preface), granian with `--http 2`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import peers
from benchmarks.run import (
    CLK_TCK,
    HOST,
    READY_TIMEOUT,
    SERVERS,
    WRK_GRACE,
    Result,
    Running,
    Scenario,
    Settings,
    free_port,
    log,
    median_result,
    parse_args,
    pick_cpus,
    pinned,
    ratios,
    render_rounds,
    render_table,
    tree_cpu_ticks,
    tree_rss_bytes,
)

STREAMS = 16  # concurrent streams per h2load connection (-m)
SCENARIO = Scenario(
    "asgi-hello-h2",
    "ASGI GET / -> 200 'Hello, world!' over HTTP/2 (h2c prior knowledge), h2load",
    "asgi",
    "benchmarks.apps.asgi_hello:app",
    peers=("hypercorn", "granian"),
)
# How each server is asked for HTTP/2 on plain TCP (module docstring), after its run.py argv.
H2_ARGS = {"rootserve": ["--http", "auto"], "hypercorn": [], "granian": ["--http", "2"]}

_FINISHED = re.compile(r"^finished in ([\d.]+)(ms|s), ([\d.]+) req/s", re.M)
_REQUESTS = re.compile(
    r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout",
    re.M,
)
_STATUS = re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", re.M)
_TIME_FOR_REQUEST = re.compile(r"^time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\s", re.M)
_TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_h2load(text: str) -> dict[str, Any]:
    """The numbers of one h2load run's report; ValueError if it has none."""
    finished = _FINISHED.search(text)
    requests = _REQUESTS.search(text)
    status = _STATUS.search(text)
    if finished is None or requests is None or status is None:
        raise ValueError(f"not an h2load report: {text.strip()[-300:]!r}")
    seconds = float(finished[1]) * (1e-3 if finished[2] == "ms" else 1.0)
    mean = _TIME_FOR_REQUEST.search(text)
    _, _, done, succeeded, failed, errored, timeout = (int(n) for n in requests.groups())
    two, three, four, five = (int(n) for n in status.groups())
    return {
        "duration_s": seconds,
        "requests_per_sec": float(finished[3]),
        "done": done,
        "succeeded": succeeded,
        "failed": failed + errored + timeout,
        "non_2xx_3xx": four + five,
        "ok_2xx": two + three,
        "mean_ms": None if mean is None else float(mean[1]) * _TO_MS[mean[2]],
    }


def h2load_argv(port: int, settings: Settings, seconds: int) -> list[str]:
    """h2load for `seconds` of load (module docstring), pinned to the client's CPU."""
    url = f"http://{HOST}:{port}/"
    clients = max(1, settings.connections // STREAMS)
    streams = min(STREAMS, settings.connections)
    argv = ["h2load", "-D", str(seconds), "-c", str(clients), "-m", str(streams), "-t", "1", url]
    return pinned(settings.client_cpu, argv)


def run_h2load(argv: list[str], seconds: float) -> dict[str, Any]:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + WRK_GRACE, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"h2load exited {done.returncode}: {(done.stderr or done.stdout)[-300:]}"
        )
    return parse_h2load(done.stdout)


def wait_ready(running: Running, port: int, deadline: float) -> str | None:
    """None once h2load gets a 2xx answer to one request over HTTP/2; else why not."""
    why = "no answer"
    while time.monotonic() < deadline:
        if running.proc.poll() is not None:
            return f"exited with status {running.proc.returncode} before it was ready"
        try:
            stats = run_h2load(["h2load", "-n", "1", f"http://{HOST}:{port}/"], 2.0)
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            why = str(exc)
        else:
            if stats["ok_2xx"] == 1:
                return None
            why = f"{stats['non_2xx_3xx']} error answers, {stats['failed']} failed"
        time.sleep(0.1)  # the server is still starting: poll again
    return f"not ready within {READY_TIMEOUT:.0f}s ({why})"


def command(name: str, port: int) -> list[str]:
    """run.py's argv for the server, with its HTTP/2 flags right after the program."""
    program, *rest = SERVERS[name].argv(SCENARIO.interface, SCENARIO.app, port)
    return [program, *H2_ARGS[name], *rest]


def bench_h2(name: str, settings: Settings, tmp: Path) -> Result:
    """Start, probe, warm up, measure and stop one server (run.bench_server, with h2load)."""
    result = Result(server=name)
    argv = command(name, port := free_port())
    result.command = pinned(settings.server_cpu, argv)
    if not Path(argv[0]).exists():
        result.error = f"not installed: {argv[0]} does not exist"
        log(f"  {name}: {result.error}")
        return result
    log(f"  {name}: starting on port {port}")
    started = time.monotonic()
    running = Running(result.command, tmp / f"{SCENARIO.name}-{name}.log")
    try:
        problem = wait_ready(running, port, started + READY_TIMEOUT)
        if problem is not None:
            result.error = problem
            log(f"  {name}: {problem}\n{running.log_tail()}")
            return result
        result.startup_s = time.monotonic() - started
        if settings.warmup > 0:
            run_h2load(h2load_argv(port, settings, settings.warmup), settings.warmup)
        log(f"  {name}: measuring for {settings.duration}s")
        before = tree_cpu_ticks(running.pid)
        stats = run_h2load(h2load_argv(port, settings, settings.duration), settings.duration)
        after = tree_cpu_ticks(running.pid)
        result.rss_mib = tree_rss_bytes(running.pid) / 1024**2
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
        result.error = f"measurement failed: {exc}"
        log(f"  {name}: {result.error}")
        return result
    finally:
        running.stop()
    cpu_s = (sum(after.values()) - sum(before.values())) / CLK_TCK
    result.ok = True
    result.requests = stats["succeeded"]
    result.requests_per_sec = stats["requests_per_sec"]
    result.p50_ms = stats["mean_ms"]  # (shown in the p50 column, labelled as the mean)
    result.cpu_s = cpu_s
    result.cpu_us_per_req = cpu_s * 1e6 / stats["succeeded"] if stats["succeeded"] else None
    result.cpu_share = cpu_s / stats["duration_s"] if stats["duration_s"] else None
    result.non_2xx_3xx = stats["non_2xx_3xx"]
    if stats["failed"]:
        result.flags.append(f"{stats['failed']} requests failed, errored or timed out")
    if stats["non_2xx_3xx"]:
        result.flags.append(f"{stats['non_2xx_3xx']} non-2xx/3xx responses")
    if not stats["succeeded"]:
        result.flags.append("no request completed")
    log(
        f"  {name}: {stats['requests_per_sec']:.0f} req/s, "
        f"{result.cpu_us_per_req or 0:.1f} us CPU/req"
        + (f"  [FLAGGED: {'; '.join(result.flags)}]" if result.flags else "")
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only and SCENARIO.name not in args.only:
        return 0  # --only names run.py's scenarios (module docstring)
    if shutil.which("h2load") is None:
        log("h2load is not installed (apt-get install nghttp2-client); nothing measured")
        return 2
    peers.ensure(log)
    server_cpu, client_cpu = pick_cpus()
    settings = Settings(args.duration, args.warmup, args.connections, server_cpu, client_cpu)
    names = SCENARIO.servers(all_peers=False)
    log(
        f"[{SCENARIO.name}] {SCENARIO.description}; "
        f"server on CPU {server_cpu}, h2load on CPU {client_cpu}"
    )
    with tempfile.TemporaryDirectory(prefix="rootserve-bench-h2-") as tmp:
        rounds = []
        for number in range(args.rounds):
            if args.rounds > 1:
                log(f"  round {number + 1} of {args.rounds}")
            rounds.append([bench_h2(name, settings, Path(tmp)) for name in names])
    results = [median_result(list(runs)) for runs in zip(*rounds, strict=True)]
    print(render_table(SCENARIO, results).replace("p50 ms", "avg ms"), flush=True)
    per_round = [ratios(r) for r in rounds]
    if args.rounds > 1:
        print(render_rounds(per_round), flush=True)
    out = args.json.with_name(f"{args.json.stem}-h2.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "scenario": SCENARIO.name,
        "description": SCENARIO.description,
        "load": f"h2load -c connections/{STREAMS} -m {STREAMS} -t 1",
        "peers": peers.versions(),
        "servers": [asdict(r) for r in results],
        "ratios_vs_peers": ratios(results),
        "ratios_per_round": per_round,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
