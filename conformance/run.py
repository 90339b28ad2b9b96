"""Run the Autobahn Testsuite's WebSocket cases against rootserve and uvicorn, with kosoku.

Run from the repository root (`make test-ws-conformance` does it, after installing kosoku):

    .venv/bin/python conformance/run.py                 # every case, both servers
    .venv/bin/python conformance/run.py --only rootserve
    .venv/bin/python conformance/run.py --include '6.4.*' --include 7.1.5

Each server is started on 127.0.0.1 port 0 serving the echo app that the benchmarks use
(benchmarks/apps/asgi_ws_echo.py); the run waits for the line that names its port, runs the
`kosoku` command (Autobahn's fuzzingclient case files, a native runner) against it, and stops
it by its PID. First the 9.* performance cases, one at a time so that their durations mean
something, `--rounds` times with the servers taking turns (this machine is shared: a slow
stretch then hits both); then every other case, `--parallelism` at a time. kosoku writes its
Autobahn-format report (index.json, index.html and one JSON and HTML file per case) under
build/ws-conformance/<server>/ and <server>/performance/ (the last round's).

Prints, per server, how many cases ended OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED and
FAILED (a case whose closing handshake went wrong counts as FAILED, as in kosoku's own
pass/fail), the cases that were not OK, and a table of the 9.* durations side by side. The
same goes to build/ws-conformance/summary.json. Exits 1 when rootserve FAILED a case (the
peer's failures are reported, not held against this run).
"""

from __future__ import annotations

import argparse
import collections
import json
import queue
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OUT = ROOT / "build" / "ws-conformance"
APP_DIR = ROOT / "benchmarks" / "apps"
APP = "asgi_ws_echo:app"
HOST = "127.0.0.1"
PERFORMANCE = "9.*"

READY_TIMEOUT = 30.0  # seconds for a server to print the line that names its port
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
KOSOKU_TIMEOUT = 3600.0  # seconds for one kosoku run: a bound, far above a normal run
VERDICTS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
# kosoku's closing-handshake verdicts that fail a case (its CaseResult.passed).
BAD_CLOSE = {"FAILED", "FAILED BY CLIENT", "WRONG CODE", "UNCLEAN"}
PORT_LINE = re.compile(rf"http://{re.escape(HOST)}:(\d+)")


@dataclass(frozen=True)
class Server:
    name: str
    argv: list[str]
    ready: str  # the log line that names the bound port


SERVERS = [
    Server(
        "rootserve",
        [str(BIN / "rootserve"), "--host", HOST, "--port", "0", "--no-access-log",
         "--app-dir", str(APP_DIR), APP],
        "Listening on",
    ),
    # uvicorn's sans-IO driver of the same `websockets` library rootserve uses.
    Server(
        "uvicorn",
        [str(BIN / "uvicorn"), "--host", HOST, "--port", "0", "--no-access-log",
         "--ws", "websockets-sansio", "--app-dir", str(APP_DIR), APP],
        "Uvicorn running on",
    ),
]  # fmt: skip


def start(server: Server) -> tuple[subprocess.Popen[str], int, threading.Thread]:
    """Start `server`; return the process, its port, and the thread draining its log."""
    proc = subprocess.Popen(
        server.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:  # keeps the pipe from filling while kosoku runs
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    deadline = time.monotonic() + READY_TIMEOUT
    seen: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        match = PORT_LINE.search(line)
        if server.ready in line and match:
            return proc, int(match.group(1)), reader
    stop(proc)
    raise SystemExit(f"{server.name} did not start:\n{''.join(seen)}")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kosoku(port: int, outdir: Path, cases: list[str], exclude: list[str], parallel: int) -> None:
    argv = [str(BIN / "kosoku"), f"ws://{HOST}:{port}", "-o", str(outdir), "-p", str(parallel)]
    argv += [arg for case in cases for arg in ("-i", case)]
    argv += [arg for case in exclude for arg in ("-x", case)]
    # Exit status 1 means a case failed; the report says which, and is read afterwards.
    result = subprocess.run(argv, capture_output=True, text=True, timeout=KOSOKU_TIMEOUT)
    if not (outdir / "index.json").exists():
        raise SystemExit(f"kosoku wrote no report ({result.returncode}):\n{result.stderr}")


def verdict(case: dict[str, Any]) -> str:
    if case["behavior"] in ("FAILED", "ERROR") or case["behaviorClose"] in BAD_CLOSE:
        return "FAILED"
    return str(case["behavior"])


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def read_report(outdir: Path) -> dict[str, dict[str, Any]]:
    """index.json's cases (one agent per run), with each case's result prose added."""
    index = json.loads((outdir / "index.json").read_text())
    cases: dict[str, dict[str, Any]] = {}
    for agent_cases in index.values():
        for case_id, entry in agent_cases.items():
            detail = json.loads((outdir / entry["reportfile"]).read_text())
            cases[case_id] = {
                **entry,
                "verdict": verdict(entry),
                "result": detail["result"],
                "resultClose": detail["resultClose"],
            }
    return cases


def served(server: Server, outdir: Path, runs: list[tuple[list[str], list[str], int]]) -> None:
    """Start `server`, run kosoku once per (include, exclude, parallelism) into `outdir`
    (a later run's report replaces an earlier one's), stop it."""
    proc, port, reader = start(server)
    print(f"{server.name}: serving on {HOST}:{port} (pid {proc.pid}) -> {outdir}", flush=True)
    try:
        for include, exclude, parallel in runs:
            kosoku(port, outdir, include, exclude, parallel)
    finally:
        stop(proc)
        reader.join(STOP_TIMEOUT)


def run_all(servers: list[Server], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every server's cases; the 9.* durations are the median of `args.rounds` rounds, the
    servers taking turns in each round so that a slow stretch of a shared machine hits all."""
    include = args.include or []
    perf_include = [c for c in include if c.startswith("9")] or ([] if include else [PERFORMANCE])
    rest = [c for c in include if not c.startswith("9")]
    results: dict[str, dict[str, Any]] = {server.name: {} for server in servers}
    for server in servers:
        shutil.rmtree(OUT / server.name, ignore_errors=True)  # no case files of an earlier run
    rounds: dict[str, dict[str, list[int]]] = {
        s.name: collections.defaultdict(list) for s in servers
    }
    for _ in range(args.rounds if perf_include else 0):
        for server in servers:
            outdir = OUT / server.name / "performance"
            served(server, outdir, [(perf_include, args.exclude, 1)])
            cases = read_report(outdir)
            results[server.name].update(cases)
            for case_id, case in cases.items():
                rounds[server.name][case_id].append(case["duration"])
    for server in servers:
        for case_id, durations in rounds[server.name].items():
            results[server.name][case_id]["duration"] = int(statistics.median(durations))
            results[server.name][case_id]["durations"] = durations
        if rest or not include:
            outdir = OUT / server.name
            exclude = [*args.exclude, PERFORMANCE]
            began = time.monotonic()
            served(server, outdir, [(rest, exclude, args.parallelism)])
            print(f"{server.name}: done in {time.monotonic() - began:.0f} s", flush=True)
            results[server.name].update(read_report(outdir))
    return {
        name: dict(sorted(cases.items(), key=lambda item: case_key(item[0])))
        for name, cases in results.items()
    }


def print_summary(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    print("\nverdicts (Autobahn Testsuite cases, run by kosoku)")
    print(f"{'server':<10}" + "".join(f"{v:>15}" for v in VERDICTS))
    for name, cases in results.items():
        counts = collections.Counter(case["verdict"] for case in cases.values())
        print(f"{name:<10}" + "".join(f"{counts[v]:>15}" for v in VERDICTS))
    for name, cases in results.items():
        odd = {cid: c for cid, c in cases.items() if c["verdict"] not in ("OK", "INFORMATIONAL")}
        if odd:
            print(f"\n{name}: cases not OK")
        for case_id, case in odd.items():
            code = case["remoteCloseCode"]
            print(f"  {case_id:<8} {case['verdict']:<14} close {code}: {case['result']}")
    perf = {
        name: {cid: c["duration"] for cid, c in cases.items() if cid.startswith("9.")}
        for name, cases in results.items()
    }
    if not any(perf.values()):
        return
    names = list(perf)
    groups = sorted(
        {".".join(cid.split(".")[:2]) for d in perf.values() for cid in d}, key=case_key
    )
    print("\n9.* performance cases: milliseconds per group, one case at a time, median of rounds")
    print(f"{'cases':<8}" + "".join(f"{n:>12}" for n in names))
    for group in [*groups, "total"]:
        row = f"{group + '.*' if group != 'total' else group:<8}"
        for name in names:
            total = sum(
                ms
                for cid, ms in perf[name].items()
                if group == "total" or cid.startswith(group + ".")
            )
            row += f"{total:>12}"
        print(row)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=[s.name for s in SERVERS], help="run one server")
    parser.add_argument("--include", "-i", action="append", metavar="CASE",
                        help="case id or glob (repeatable; default: every case)")  # fmt: skip
    parser.add_argument("--exclude", "-x", action="append", default=[], metavar="CASE",
                        help="case id or glob to leave out (repeatable)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of the 9.* cases per server; durations are medians")  # fmt: skip
    parser.add_argument("--parallelism", "-p", type=int, default=2,
                        help="cases at a time outside 9.* (default: 2)")  # fmt: skip
    args = parser.parse_args()
    results = run_all([s for s in SERVERS if args.only in (None, s.name)], args)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "summary.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    print_summary(results)
    print(f"\nreports: {OUT.relative_to(ROOT)}/<server>/index.html and performance/index.html")
    failed = [cid for cid, c in results.get("rootserve", {}).items() if c["verdict"] == "FAILED"]
    if failed:
        print(f"rootserve FAILED {len(failed)} case(s): {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
