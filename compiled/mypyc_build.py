"""Build rootserve's hot modules with mypyc, from the same source, into a tree of their own.

    ROOTSERVE_MYPYC=1 pip wheel --no-deps .                # the compiled wheel (hatch_build.py)
    make compiled                                          # that wheel, unpacked in build/compiled
    PYTHONPATH=build/compiled .venv/bin/python -m pytest   # the suite against that build

The tree is a copy of src/rootserve with a C extension beside each module named in
MODULES, and the code they share in one library at the top (`rootserve__mypyc`): Python
imports the extension before the .py of the same name, so every other module stays the
interpreted source. The source is the only implementation; mypyc turns its typed classes
into native ones (attributes at fixed offsets, methods called directly) and leaves
behaviour alone. The whole test suite runs against both builds (`make test`).

Why these modules: they are the path of every request (parse, exchange, adapters, the
connection), measured with benchmarks/instructions.py. A class that derives from a compiled
class is compiled too (mypyc refuses interpreted subclasses of native classes), and none is
subclassed elsewhere, tests included.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "rootserve"
OUT = ROOT / "build" / "compiled"

# Package-relative paths of the compiled modules.
MODULES = (
    "protocol/events.py",
    "protocol/rules.py",
    "protocol/_states.py",
    "protocol/_send.py",
    "protocol/_switch.py",
    "protocol/_refuse.py",
    "protocol/_chunked.py",
    "protocol/_head.py",
    "protocol/http11.py",
    "server/_answer.py",
    "server/_closing.py",
    "server/_deadlines.py",
    "server/connection.py",
    "server/state.py",
    "server/exchange.py",
    "server/h2_exchange.py",
    "asgi/_scope.py",
    "asgi/http.py",
    "wsgi/adapter.py",
    "wsgi/call.py",
    "wsgi/environ.py",
    "wsgi/input.py",
    "wsgi/runner.py",
)

# One C file for all: multi_file=True compiled in 38 s instead of 52, but cost 1.1-1.6% more
# instructions per request (calls across files are not inlined).
_SETUP = """\
from setuptools import setup
from mypyc.build import mypycify

setup(
    name="rootserve-compiled",
    ext_modules=mypycify({modules!r}, opt_level="3", group_name="rootserve"),
)
"""


# What the build needs besides a C compiler and Python's headers (the wheel's build hook
# asks the build environment for them).
REQUIRES = ("mypy>=1.15", "setuptools>=70")


def build(out: Path = OUT) -> Path:
    """Copy the source to `out` and compile MODULES there; returns `out`."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(SOURCE, out / "rootserve", ignore=shutil.ignore_patterns("__pycache__"))
    modules = [f"rootserve/{name}" for name in MODULES]
    (out / "setup.py").write_text(_SETUP.format(modules=modules))
    env = dict(os.environ, MYPYC_OPT_LEVEL="3")
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=out,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    (out / "setup.py").unlink()
    shutil.rmtree(out / "build", ignore_errors=True)
    missing = [name for name in MODULES if not _compiled(out / "rootserve" / name)]
    if missing:
        raise SystemExit(f"mypyc built no extension for: {', '.join(missing)}")
    return out


def extensions(out: Path) -> list[Path]:
    """The built extensions in `out`, as paths relative to it (where a wheel puts them)."""
    return sorted(path.relative_to(out) for path in out.rglob("*.so"))


def _compiled(source: Path) -> bool:
    stem = source.with_suffix("").name
    return any(source.parent.glob(f"{stem}.*.so"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the tree goes")
    args = parser.parse_args()
    out = build(args.out)
    print(f"compiled {len(MODULES)} modules into {out}")


if __name__ == "__main__":
    main()
