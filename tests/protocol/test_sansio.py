"""Guard: the protocol package does no I/O of its own (STYLE.md point 1).

The key check reads the source with `ast`: no module of `rootserve.protocol` may import
asyncio, socket, threading or selectors, directly or from a submodule of them. A second check
imports the package in a fresh interpreter and looks at `sys.modules`; there the standard
library's `email.utils` (used for the Date header) brings `socket` and `selectors` in, so that
check covers asyncio and threading only.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import rootserve.protocol

FORBIDDEN = frozenset({"asyncio", "socket", "threading", "selectors"})
PACKAGE_DIR = Path(rootserve.protocol.__file__).parent
MODULES = sorted(PACKAGE_DIR.rglob("*.py"))


def imported_modules(tree: ast.AST) -> set[str]:
    """Every module an `import` or `from ... import` in `tree` names (anywhere in it)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (getattr(node.func, "id", None) or getattr(node.func, "attr", None))
            in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def test_the_package_has_modules() -> None:
    assert {p.name for p in MODULES} >= {"__init__.py", "http11.py", "events.py", "rules.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_io_imports_in_source(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = {name for name in imported_modules(tree) if name.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.name} imports {sorted(bad)}: the protocol layer must stay sans-IO"


def test_the_guard_sees_every_import_form() -> None:
    source = (
        "import os, asyncio.events\n"
        "from socket import socket\n"
        "def f():\n"
        "    import threading\n"
        "    return __import__('selectors'), importlib.import_module('ssl')\n"
        "from . import sibling\n"
    )
    assert imported_modules(ast.parse(source)) == {
        "os",
        "asyncio.events",
        "socket",
        "threading",
        "selectors",
        "ssl",
    }


def test_importing_the_package_loads_no_event_loop_or_threads() -> None:
    code = (
        "import json, sys\n"
        "import rootserve.protocol, rootserve.protocol.http11\n"
        "print(json.dumps(sorted(m for m in ('asyncio', 'threading') if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert json.loads(result.stdout) == []
