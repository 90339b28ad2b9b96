"""Measure everything docs/performance.md shows, then write it (and its chart).

    .venv/bin/python benchmarks/performance.py            # 3 rounds of 8 s: the full run
    .venv/bin/python benchmarks/performance.py --quick    # 1 round of 3 s
    .venv/bin/python benchmarks/performance.py --compiled # with the compiled build's rows

It runs, one after the other and with the flags given (run.py's: --duration, --quick,
--rounds, --warmup, --connections):

1. run.py over SCENARIOS with every peer (--all-peers), results in build/bench/perf.json;
2. footprint.py (start-up, idle RSS, RSS per idle connection), perf-footprint.json;
3. workers.py (`-w 2` against `-w 1`), perf-workers.json;
4. report.py on the peers venv's Python (matplotlib is there), which writes the page.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import footprint, peers, run, workers

# run.py's scenarios that compare servers (the metrics and trace ones compare rootserve
# with itself, so they stay out of the page).
SCENARIOS = (
    "asgi-hello",
    "asgi-echo-64k",
    "asgi-fastapi-json",
    "wsgi-hello",
    "wsgi-echo-64k",
    "wsgi-flask-json",
    "ws-echo",
)
JSON = run.ROOT / "build" / "bench" / "perf.json"


def main(argv: list[str]) -> int:
    peers.ensure(run.log)
    # --compiled (make perf-docs builds it first): the compiled wheel's rows beside the source
    # build's, in the throughput table; the other measures run the source build.
    compiled = ["--compiled"] if "--compiled" in argv else []
    argv = [arg for arg in argv if arg != "--compiled"]
    shared = [*argv, "--json", str(JSON)]
    status = run.main([*shared, *compiled, "--all-peers", "--only", ",".join(SCENARIOS)])
    status = status or footprint.main(["--json", str(JSON.with_name("perf-footprint.json"))])
    status = status or workers.main(shared)
    if status:
        return status
    report = [str(peers.PYTHON), str(run.BENCH_DIR / "report.py"), "--json-dir", str(JSON.parent)]
    return subprocess.run(report, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
