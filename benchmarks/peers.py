"""The peer servers, installed in a venv of their own: build/bench-peers/venv.

The project's .venv holds rootserve and its development tools; the servers it is compared
with live apart, so their pins never bend the project's and each keeps the versions pip
picks for it today. `ensure()` makes the venv with `python -m venv` on first use and
`pip install`s PACKAGES into it (again whenever PACKAGES changes: the list is stamped in
the venv), and `versions()` reads what got installed, for the report. The frameworks
(Flask, FastAPI) are installed here too so a peer can import the same app files rootserve
serves from .venv, and matplotlib for the chart (benchmarks/report.py runs on this venv).

    .venv/bin/python benchmarks/peers.py      # install (if needed) and print the versions
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "build" / "bench-peers" / "venv"
BIN = VENV / "bin"
PYTHON = BIN / "python"
STAMP = VENV / ".installed"

# uvicorn[standard] brings httptools, uvloop and websockets (its websockets-sansio protocol).
PACKAGES = (
    "uvicorn[standard]",
    "gunicorn",
    "granian",
    "hypercorn",
    "flask",
    "fastapi",
    "matplotlib",
)
# The distributions whose versions the report prints.
REPORTED = (
    "uvicorn",
    "httptools",
    "uvloop",
    "websockets",
    "gunicorn",
    "granian",
    "hypercorn",
    "flask",
    "fastapi",
)


def ensure(log: object = print) -> Path:
    """The peers venv's bin directory, the venv created and filled first when needed."""
    wanted = "\n".join(PACKAGES) + "\n"
    if STAMP.exists() and STAMP.read_text() == wanted:
        return BIN
    say = log if callable(log) else print
    if not PYTHON.exists():
        say(f"creating the peers venv in {VENV.relative_to(ROOT)}")
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    say(f"installing {' '.join(PACKAGES)} into {VENV.relative_to(ROOT)}")
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", *PACKAGES], check=True)
    STAMP.write_text(wanted)
    return BIN


def versions() -> dict[str, str]:
    """Installed version of each REPORTED distribution in the peers venv ("-" if absent)."""
    code = (
        "import json, sys\n"
        "from importlib import metadata\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try: out[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError: out[name] = '-'\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(PYTHON), "-c", code, *REPORTED], capture_output=True, text=True, check=True
    )
    found: dict[str, str] = json.loads(done.stdout)
    return found


if __name__ == "__main__":
    ensure()
    for name, version in versions().items():
        print(f"{name} {version}")
