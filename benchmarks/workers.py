"""ASGI GET hello with worker processes: rootserve -w 1 and -w 2, uvicorn and granian -w 2.

Run from the repository root (`make bench` runs it after run.py, with the same BENCH_ARGS):

    .venv/bin/python benchmarks/workers.py               # 3 interleaved rounds of 8 s
    .venv/bin/python benchmarks/workers.py --quick       # one round of 3 s
    .venv/bin/python benchmarks/workers.py --rounds 5 --duration 10

It reads run.py's flags with run.py's own parser, so one BENCH_ARGS feeds both: --duration,
--quick, --warmup, --connections, --rounds and --json apply (the JSON goes next to run.py's,
as `<name>-workers.json`); the scenario flags (--wsgi, --ws, --all-peers) do not, and --only,
which picks run.py's scenarios, skips this benchmark.

Unlike run.py, nothing is pinned: a server with two workers needs two cores, and this machine
has only two, so the servers and wrk (one thread) share both. Each server is ready when the
probe answers and its log shows every worker ready (rootserve's supervisor logs
"Worker PID ready" per worker); otherwise the first seconds would measure one worker. The CPU
time is that of the whole process tree (supervisor and workers); stopping sends SIGTERM to the
process started here, then stops what is left of the tree it started, by PID (run.Running).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import peers
from benchmarks.run import (
    HOST,
    READY_TIMEOUT,
    SCENARIOS,
    SERVERS,
    Result,
    Running,
    Settings,
    _fmt,
    align,
    bench_server,
    log,
    median_result,
    parse_args,
    process_tree,
    wrk_version,
)

SCENARIO = SCENARIOS["asgi-hello"]  # the same app, probe and expected answer
NAME = "asgi-hello-workers"


@dataclass(frozen=True)
class Variant:
    """One row: a server of run.SERVERS started with `workers` worker processes."""

    label: str
    server: str
    workers: int
    # A line each worker logs once it serves; group 1, when present, names the worker.
    ready_line: str
    options: tuple[tuple[str, str], ...] = ()  # further options set on the command line


_ROOTSERVE_READY = r"Worker (\d+) ready"  # the supervisor's line, one per worker
VARIANTS = (
    Variant("rootserve -w 1", "rootserve", 1, _ROOTSERVE_READY),
    Variant("rootserve -w 2", "rootserve", 2, _ROOTSERVE_READY),
    # No worker id in the line: each worker process runs the lifespan and logs it once.
    Variant("uvicorn -w 2", "uvicorn", 2, r"Application startup complete\."),
    Variant("granian -w 2", "granian", 2, r"Started worker-(\d+)\b", (("--runtime-threads", "1"),)),
)
BASE = "rootserve -w 2"
PAIRS = ((BASE, "rootserve -w 1"), (BASE, "uvicorn -w 2"), (BASE, "granian -w 2"))


def set_option(argv: Sequence[str], flag: str, value: str) -> list[str]:
    """argv with `flag value`: the value after an existing flag replaced, else both inserted
    right after the program (before any positional APP at the end)."""
    out = list(argv)
    if flag in out[1:-1]:
        out[out.index(flag, 1) + 1] = value
    else:
        out[1:1] = [flag, value]
    return out


def command(variant: Variant, port: int) -> list[str]:
    argv = SERVERS[variant.server].argv(SCENARIO.interface, SCENARIO.app, port)
    argv = set_option(argv, "--log-level", "info")  # the per-worker ready lines are info
    argv = set_option(argv, "--workers", str(variant.workers))
    for flag, value in variant.options:
        argv = set_option(argv, flag, value)
    return argv


def ready_workers(log_text: str, ready_line: str) -> int:
    """How many workers the log shows ready: distinct ids when the pattern captures one,
    else the number of matching lines."""
    pattern = re.compile(ready_line)
    matches = list(pattern.finditer(log_text))
    return len({m[1] for m in matches}) if pattern.groups else len(matches)


def all_workers_ready(variant: Variant) -> Callable[[Running, float], str | None]:
    """A `ready` hook for run.bench_server: poll the server's log until every worker is up."""

    def wait(running: Running, deadline: float) -> str | None:
        while True:
            try:
                text = running.log_path.read_text(errors="replace")
            except OSError:
                text = ""
            seen = ready_workers(text, variant.ready_line)
            if seen >= variant.workers:
                log(
                    f"  {variant.label}: {seen} worker(s) ready, "
                    f"{len(process_tree(running.pid))} processes in its tree"
                )
                return None
            if running.proc.poll() is not None:
                return f"exited with status {running.proc.returncode} before all workers were ready"
            if time.monotonic() >= deadline:
                return (
                    f"{seen} of {variant.workers} workers ready within {READY_TIMEOUT:.0f}s "
                    f"(no more /{variant.ready_line}/ lines in its log)"
                )
            time.sleep(0.05)

    return wait


def errors(result: Result) -> int:
    """wrk's socket errors plus non-2xx/3xx answers of one run."""
    return sum(result.socket_errors.values()) + result.non_2xx_3xx


def pair_ratios(
    results: Sequence[Result], pairs: Sequence[tuple[str, str]] = PAIRS
) -> dict[str, dict[str, float | None]]:
    """For each (a, b): a's req/s over b's (>1: a served more) and a's CPU us/req over b's
    (<1: a spent less per request); None where either did not run."""
    ran = {r.server: r for r in results if r.ok}
    out: dict[str, dict[str, float | None]] = {}
    for a, b in pairs:
        x, y = ran.get(a), ran.get(b)
        rps = cpu = None
        if x is not None and y is not None:
            if x.requests_per_sec and y.requests_per_sec:
                rps = x.requests_per_sec / y.requests_per_sec
            if x.cpu_us_per_req and y.cpu_us_per_req:
                cpu = x.cpu_us_per_req / y.cpu_us_per_req
        out[f"{a} / {b}"] = {"req_per_sec": rps, "cpu_per_req": cpu}
    return out


def render_ratios(
    medians: dict[str, dict[str, float | None]],
    per_round: Sequence[dict[str, dict[str, float | None]]],
) -> str:
    """One line per pair: the ratios of the median rows, then the req/s ratio of each round
    and their median (its spread is the error bar)."""
    width = max(map(len, medians), default=0)
    lines = []
    for pair, ratio in medians.items():
        line = (
            f"{pair.ljust(width)}  req/s {_fmt(ratio['req_per_sec'], '.2f')}x, "
            f"CPU/req {_fmt(ratio['cpu_per_req'], '.2f')}x"
        )
        if len(per_round) > 1:
            by_round = [r[pair]["req_per_sec"] for r in per_round]
            known = [q for q in by_round if q is not None]
            middle = f", median {statistics.median(known):.2f}x" if known else ""
            line += f"  (req/s by round: {' '.join(_fmt(q, '.2f') for q in by_round)}{middle})"
        lines.append(line)
    return "\n".join(lines)


def render_table(
    results: Sequence[Result], error_totals: dict[str, int], settings: Settings, rounds: int
) -> str:
    cpus = len(os.sched_getaffinity(0))
    header = ["server", "req/s", "p50 ms", "p99 ms", "errors", "CPU us/req", "RSS MiB"]
    rows = [
        [
            r.server + (" !" if r.flags else ""),
            _fmt(r.requests_per_sec, ",.0f"),
            _fmt(r.p50_ms, ".2f"),
            _fmt(r.p99_ms, ".2f"),
            str(error_totals.get(r.server, 0)) if r.ok else "-",
            _fmt(r.cpu_us_per_req, ".1f"),
            _fmt(r.rss_mib, ".1f"),
        ]
        for r in results
    ]
    out = [
        f"== {NAME}: {SCENARIO.description}, wrk -t1 -c{settings.connections}, "
        f"{settings.duration}s runs, median of {rounds} interleaved round(s)",
        f"   NOT pinned: each server (supervisor + workers) and wrk share the same {cpus} CPU(s); "
        "errors summed over rounds; CPU over the whole process tree",
        *align(header, rows, {1, 2, 3, 4, 5, 6}),
    ]
    for r in results:
        if r.error:
            out.append(f"   {r.server}: did not run: {r.error}")
        for flag in r.flags:
            out.append(f" ! {r.server}: {flag}")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only:
        log(f"{NAME}: skipped (--only picks run.py's scenarios)")
        return 0
    if shutil.which("wrk") is None:
        log("wrk is not installed (apt-get install wrk); nothing measured")
        return 2
    peers.ensure(log)  # uvicorn and granian run from the peers venv (run.PEER_BIN)
    json_path: Path = args.json.with_name(f"{args.json.stem}-workers{args.json.suffix}")
    settings = Settings(args.duration, args.warmup, args.connections, None, None)
    log(
        f"[{NAME}] {', '.join(v.label for v in VARIANTS)}; {settings.duration}s runs after "
        f"{settings.warmup}s warm-up, {settings.connections} connections, {args.rounds} "
        f"round(s); not pinned (servers and wrk share {len(os.sched_getaffinity(0))} CPUs)"
    )
    rounds: list[list[Result]] = []
    with tempfile.TemporaryDirectory(prefix="rootserve-bench-workers-") as tmp:
        for number in range(args.rounds):
            if args.rounds > 1:
                log(f"  round {number + 1} of {args.rounds}")
            rounds.append(
                [
                    bench_server(
                        v.label,
                        SCENARIO,
                        settings,
                        Path(tmp),
                        command=functools.partial(command, v),
                        ready=all_workers_ready(v),
                    )
                    for v in VARIANTS
                ]
            )
    results = [median_result(list(runs)) for runs in zip(*rounds, strict=True)]
    error_totals = {
        runs[0].server: sum(errors(r) for r in runs if r.ok) for runs in zip(*rounds, strict=True)
    }
    medians = pair_ratios(results)
    per_round = [pair_ratios(r) for r in rounds]
    print(render_table(results, error_totals, settings, args.rounds), flush=True)
    print(render_ratios(medians, per_round), flush=True)
    print(flush=True)
    report: dict[str, Any] = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)),
            "wrk": wrk_version(),
        },
        "settings": asdict(settings) | {"threads": 1, "host": HOST, "pinned": False},
        "scenario": NAME,
        "description": SCENARIO.description,
        "app": SCENARIO.app,
        "variants": [asdict(v) for v in VARIANTS],
        "servers": [asdict(r) for r in results],
        "errors_over_rounds": error_totals,
        "ratios": medians,
        "rounds": [[asdict(r) for r in round_] for round_ in rounds],
        "ratios_per_round": per_round,
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    log(f"results written to {json_path}")
    if any(r.flags for r in results):
        log("some servers are flagged (!): their numbers include errors or non-2xx answers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
