"""Turn the benchmark JSON files into docs/performance.md and docs/img/performance.png.

It reads what the drivers wrote, nothing else: build/bench/perf.json (run.py's scenarios),
perf-footprint.json (footprint.py) and perf-workers.json (workers.py), and writes one
Markdown page with the machine, every version, the method and four tables, plus a chart of
CPU per request by scenario. It measures nothing, so it can be re-run on old results.

matplotlib lives in the peers venv (benchmarks/peers.py), so benchmarks/performance.py runs
this module with that venv's Python:

    build/bench-peers/venv/bin/python benchmarks/report.py [--json-dir build/bench]

Flags in the notes column: `client-bound` when the server used under CLIENT_BOUND of its
core during the measured run (wrk, on its own core, set the pace, so req/s understates the
server; CPU per request still holds); `noisy` when the server's CPU per request moved more
than NOISY (relative to the median) between rounds; `errors` when wrk saw socket errors or
non-2xx answers (run.py's `!`).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
CHART = ROOT / "docs" / "img" / "performance.png"
CLIENT_BOUND = 0.9  # of one core
NOISY = 0.2  # (max - min) / median of CPU per request over the rounds
FLOOR = "floor"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """A Markdown table: the first `left` columns and the last (notes) left-aligned."""
    last = len(header) - 1
    rule = ["---" if i < left or i == last else "---:" for i in range(len(header))]
    return ["| " + " | ".join(cells) + " |" for cells in [header, rule, *rows]]


def notes(server: dict[str, Any], rounds: list[dict[str, Any]]) -> list[str]:
    """The flags of one median row (see the module docstring)."""
    out = []
    share = server.get("cpu_share")
    if share is not None and share < CLIENT_BOUND:
        out.append(f"client-bound ({share:.0%} of a core)")
    cpu = [r["cpu_us_per_req"] for r in rounds if r.get("ok") and r.get("cpu_us_per_req")]
    if len(cpu) > 1 and (max(cpu) - min(cpu)) / statistics.median(cpu) > NOISY:
        out.append(f"noisy ({min(cpu):.0f}-{max(cpu):.0f} us)")
    if server.get("flags"):
        out.append("errors")
    if server.get("error"):
        out.append("did not run")
    return out


def floor_cpu(scenarios: dict[str, Any]) -> dict[str, float]:
    """The floor's CPU per request by scenario, and under "" the first one found."""
    found: dict[str, float] = {}
    for name, scenario in scenarios.items():
        for server in scenario["servers"]:
            if server["server"] == FLOOR and server.get("cpu_us_per_req"):
                found[name] = server["cpu_us_per_req"]
                found.setdefault("", server["cpu_us_per_req"])
    return found


def throughput_rows(perf: dict[str, Any]) -> list[list[str]]:
    floors = floor_cpu(perf["scenarios"])
    rows = []
    for name, scenario in perf["scenarios"].items():
        unit = "msg" if scenario.get("load", "").endswith("ws_client.py") else "req"
        floor = floors.get(name) or floors.get("")
        for index, server in enumerate(scenario["servers"]):
            rounds = [round_[index] for round_ in scenario["rounds"]]
            cpu = server.get("cpu_us_per_req")
            times = f"{cpu / floor:.1f}x" if cpu and floor else "-"
            rows.append(
                [
                    f"{name}" if index == 0 else "",
                    server["server"],
                    _fmt(server.get("requests_per_sec"), ",.0f") + f" {unit}/s",
                    _fmt(server.get("p50_ms"), ".2f"),
                    _fmt(server.get("p99_ms"), ".2f"),
                    _fmt(cpu, ".1f"),
                    times,
                    _fmt(server.get("rss_mib"), ".1f"),
                    ", ".join(notes(server, rounds)),
                ]
            )
    return rows


def footprint_rows(footprint: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for row in footprint:
        start = row.get("startup_median_s")
        idle, loaded = row.get("idle_rss_kib"), row.get("loaded_rss_kib")
        rows.append(
            [
                row["label"],
                _fmt(start * 1000 if start is not None else None, ".0f"),
                _fmt(idle / 1024 if idle is not None else None, ".1f"),
                _fmt(loaded / 1024 if loaded is not None else None, ".1f"),
                f"{row.get('connections_open') or 0:,} / {row['connections_asked']:,}",
                _fmt(row.get("kib_per_connection"), ".1f"),
                row.get("error") or "",
            ]
        )
    return rows


def workers_rows(workers: dict[str, Any]) -> list[list[str]]:
    return [
        [
            server["server"],
            _fmt(server.get("requests_per_sec"), ",.0f"),
            _fmt(server.get("cpu_us_per_req"), ".1f"),
            _fmt(server.get("rss_mib"), ".1f"),
            # Two workers may use more than one core: only errors are worth a note here.
            "errors" if server.get("flags") else "did not run" if server.get("error") else "",
        ]
        for server in workers["servers"]
    ]


def render(
    perf: dict[str, Any], footprint: list[dict[str, Any]], workers: dict[str, Any] | None
) -> str:
    machine = perf["machine"]
    settings = perf["settings"]
    rounds = perf.get("rounds", 1)
    kind = "a quick run" if settings["duration"] <= 3 else "a full run"
    versions = [["rootserve", perf.get("rootserve", "-")]]
    versions += [[name, version] for name, version in perf.get("peers", {}).items()]
    connections = footprint[0]["connections_asked"] if footprint else 0
    lines = [
        "# Performance",
        "",
        f"Measured on {perf['generated_at'][:10]} by `benchmarks/performance.py`, {kind}: "
        f"{rounds} round(s) of {settings['duration']} s per server after "
        f"{settings['warmup']} s of warm-up, {settings['connections']} connections. "
        f"Machine: {machine['cpus']} cores, {machine.get('cpu_model', 'unknown')}, "
        f"{machine['platform']}, Python {machine['python']}, {machine['wrk']}.",
        "",
        "Numbers from one machine do not carry to another; the ratios between servers measured "
        "back to back do, roughly. `benchmarks/README.md` explains every column.",
        "",
        "![CPU microseconds per request by scenario and server](img/performance.png)",
        "",
        "## Versions",
        "",
        *_table(["package", "version"], versions),
        "",
        "## Method",
        "",
        f"- **Pinning.** Each server runs alone, pinned with `taskset` to CPU "
        f"{settings['server_cpu']}; the load generator (`wrk -t1`, or "
        f"`benchmarks/ws_client.py` for WebSocket) is pinned to CPU {settings['client_cpu']}. "
        "Every server has exactly one core and one worker process.",
        f"- **Rounds and medians.** The servers take turns, {rounds} round(s); each number is "
        "the median over the rounds.",
        "- **CPU us/req** is the CPU time (user + system) of the server's whole process tree "
        "during the measured run, divided by the requests completed (for ws-echo: by the "
        "messages echoed). **x floor** divides it "
        "by the CPU per request of the floor server (`benchmarks/floor.py`: uvloop and "
        "httptools answering canned bytes, no app) in the same scenario, or in the first "
        "scenario that ran it.",
        f"- **Flags.** *client-bound*: the server used under {CLIENT_BOUND:.0%} of its core, so "
        "something else set the pace: wrk on its own core, or other work sharing the server's "
        "core (compare CPU us/req, not req/s); *noisy*: its CPU per request "
        f"moved by more than {NOISY:.0%} between rounds; *errors*: socket errors or non-2xx "
        "answers.",
        "- Same app code for every server (`benchmarks/apps/`); access logs off. The peers run "
        "from their own venv, `build/bench-peers/venv`. *rootserve* is the source build (the "
        "pure-Python wheel); *rootserve-compiled*, where shown, is the wheel built with "
        "`ROOTSERVE_MYPYC=1` (the hot modules compiled by mypyc from the same source).",
        "",
        "## Throughput and CPU per request",
        "",
        *_table(
            [
                "scenario",
                "server",
                "rate",
                "p50 ms",
                "p99 ms",
                "CPU us/req",
                "x floor",
                "RSS MiB",
                "notes",
            ],
            throughput_rows(perf),
            left=2,
        ),
        "",
        "## Start-up and memory",
        "",
        "Each server with one worker serving the hello app: the time from spawn to the first "
        "200 (median of 5 starts), its RSS (whole process tree) after start, and its RSS with "
        f"{connections:,} idle keep-alive connections, each of which made one request "
        "(keep-alive timeouts and connection caps lifted: see `benchmarks/footprint.py`).",
        "",
        *_table(
            [
                "server",
                "start ms",
                "idle RSS MiB",
                "RSS MiB, idle conns",
                "open",
                "KiB/conn",
                "notes",
            ],
            footprint_rows(footprint),
        ),
    ]
    if workers is not None:
        lines += [
            "",
            "## Two workers",
            "",
            "ASGI hello with worker processes (`benchmarks/workers.py`). Not pinned: two "
            "workers need two cores, so the servers share both CPUs with wrk; compare these "
            "rows only with each other.",
            "",
            *_table(["server", "req/s", "CPU us/req", "RSS MiB", "notes"], workers_rows(workers)),
        ]
    return "\n".join(lines) + "\n"


def chart(perf: dict[str, Any], path: Path) -> None:
    """One horizontal bar group per scenario: CPU us per request of each server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [
        (n, s)
        for n, s in perf["scenarios"].items()
        if any(r.get("cpu_us_per_req") for r in s["servers"])
    ]
    fig, axes = plt.subplots(
        len(scenarios), 1, figsize=(8, 1.1 + 0.42 * sum(len(s["servers"]) for _, s in scenarios))
    )
    for axis, (name, scenario) in zip(list(getattr(axes, "flat", [axes])), scenarios, strict=True):
        rows = [r for r in scenario["servers"] if r.get("cpu_us_per_req")]
        labels = [r["server"] for r in rows]
        values = [r["cpu_us_per_req"] for r in rows]
        colors = [
            "#d95f02" if n.startswith("rootserve") else "#999999" if n == FLOOR else "#1b9e77"
            for n in labels
        ]
        axis.barh(labels, values, color=colors)
        axis.invert_yaxis()
        axis.set_title(name, loc="left", fontsize=10)
        for y, value in enumerate(values):
            axis.text(value, y, f" {value:.0f}", va="center", fontsize=8)
        axis.set_xlim(0, max(values) * 1.15)
        axis.tick_params(labelsize=8)
    fig.supxlabel("CPU microseconds per request (lower is better), one core per server")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-dir", type=Path, default=ROOT / "build" / "bench")
    args = parser.parse_args(argv)
    perf = json.loads((args.json_dir / "perf.json").read_text())
    footprint = json.loads((args.json_dir / "perf-footprint.json").read_text())
    workers_path = args.json_dir / "perf-workers.json"
    workers = json.loads(workers_path.read_text()) if workers_path.exists() else None
    DOC.write_text(render(perf, footprint, workers))
    chart(perf, CHART)
    print(f"wrote {DOC.relative_to(ROOT)} and {CHART.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
