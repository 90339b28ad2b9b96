"""Instructions per request of rootserve's Python share, counted by callgrind.

    .venv/bin/python benchmarks/instructions.py            # ASGI GET hello
    .venv/bin/python benchmarks/instructions.py --wsgi     # WSGI GET hello (app threads)
    .venv/bin/python benchmarks/instructions.py --wsgi-post  # WSGI POST 64 KiB, echoed
    .venv/bin/python benchmarks/instructions.py --asgi-post  # ASGI POST 64 KiB, echoed

It runs `benchmarks/replay.py --only rootserve` under `valgrind --tool=callgrind` twice, with
two request counts, and divides the difference of the two totals by the difference of the
counts: start-up, imports and the warm-up cancel out. Instruction counts do not depend on
what else the machine is doing, so two versions of the hot path can be compared to the
percent on a noisy machine (wall-clock time cannot do that here).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def total_instructions(requests: int, mode: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(HERE / "replay.py"),
            "--only",
            "rootserve",
            "--rounds",
            "1",
            "--requests",
            str(requests),
        ]
        if mode:
            command.append(mode)
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode:
            raise RuntimeError(f"replay.py failed under callgrind:\n{run.stderr[-3000:]}")
        match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        if match is None:
            raise RuntimeError("callgrind wrote no total")
        return int(match[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wsgi", action="store_true", help="the WSGI hello app")
    parser.add_argument("--wsgi-post", action="store_true", help="a 64 KiB POST, WSGI echo")
    parser.add_argument("--asgi-post", action="store_true", help="a 64 KiB POST, ASGI echo")
    parser.add_argument("--requests", type=int, nargs=2, default=[10_240, 30_720])
    args = parser.parse_args()
    low, high = args.requests
    mode = (
        "--wsgi-post"
        if args.wsgi_post
        else "--asgi-post"
        if args.asgi_post
        else "--wsgi"
        if args.wsgi
        else ""
    )
    counts = [total_instructions(n, mode) for n in (low, high)]
    per_request = (counts[1] - counts[0]) / (high - low)
    kind = {
        "--wsgi-post": "WSGI POST 64 KiB",
        "--asgi-post": "ASGI POST 64 KiB",
        "--wsgi": "WSGI GET",
        "": "ASGI GET",
    }[mode]
    print(f"{kind}: {per_request:,.0f} instructions per request")


if __name__ == "__main__":
    main()
