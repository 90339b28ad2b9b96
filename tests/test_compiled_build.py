"""The suite runs twice: against the source, and against the mypyc build of the hot modules
(compiled/mypyc_build.py; `make test-compiled` sets ROOTSERVE_BUILD=compiled and puts that tree
first on the path). Each run proves it ran against the build it names."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "compiled"))
from mypyc_build import MODULES  # noqa: E402

COMPILED = os.environ.get("ROOTSERVE_BUILD") == "compiled"
NAMES = ["rootserve." + path.removesuffix(".py").replace("/", ".") for path in MODULES]


def _is_extension(origin: str | None) -> bool:
    return origin is not None and any(origin.endswith(s) for s in EXTENSION_SUFFIXES)


@pytest.mark.parametrize("name", NAMES)
def test_each_hot_module_comes_from_the_build_this_run_names(name: str) -> None:
    module = importlib.import_module(name)
    assert _is_extension(module.__file__) is COMPILED, module.__file__


def test_a_server_process_runs_the_same_build() -> None:
    # The e2e tests start `rootserve` processes: they inherit the path, so they run the
    # build the run names too.
    code = "import rootserve.protocol.http11 as m; print(m.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    assert _is_extension(out) is COMPILED, out


def test_the_compiled_modules_exist_in_the_source() -> None:
    for path in MODULES:
        assert (ROOT / "src" / "rootserve" / path).is_file(), path
