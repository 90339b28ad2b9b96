"""What a setting is: its declaration (`setting`, `SettingInfo`) and the parsers of its
values, each with a plain-language error. The settings themselves are declared in config.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rootserve.units import GIB, KIB, MIB

__all__ = [
    "SettingInfo",
    "parse_bool",
    "parse_count",
    "parse_port",
    "parse_root_path",
    "parse_seconds",
    "parse_size",
    "reference_table",
    "setting",
]

_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB, "mib": MIB}
_SIZE_UNITS |= {"g": GIB, "gb": GIB, "gib": GIB}


def parse_size(text: str) -> int:
    """A byte count: `16384`, `16KiB`, `1MiB` (k, m and g are powers of 1024)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size (examples: 8192, 16KiB, 100MiB)")
    return int(match[1]) * _SIZE_UNITS[(match[2] or "").lower()]


def parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def parse_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def parse_port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a port (0-65535)") from None
    if not 0 <= value <= 65535:
        raise ValueError(f"{text!r} is not a port (0-65535)")
    return value


def parse_root_path(text: str) -> str:
    """A URL prefix: empty, or starting with "/" and never ending with one (so that
    SCRIPT_NAME and `root_path` join with PATH_INFO and `path` without a double slash)."""
    path = text.strip().rstrip("/")
    if path and not path.startswith("/"):
        raise ValueError(f"{text!r} is not a URL path (write it as /prefix)")
    return path


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


@dataclass(frozen=True)
class SettingInfo:
    """What the CLI, the env reader, the TOML reader and the docs know about one setting."""

    name: str
    help: str
    parse: Callable[[str], Any]
    default: Any
    flag: str
    env: str
    short: str | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    switch: bool = False  # a boolean: --name / --no-name
    repeat: bool = False  # a list: the flag may be given more than once
    positional: bool = False
    group: str = "server"


def setting(
    default: Any,
    help: str,
    *,
    parse: Callable[[str], Any] = str,
    short: str | None = None,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    group: str = "server",
    positional: bool = False,
) -> Any:
    """Declare a Config field; the flag and env var names come from the field name."""
    meta = {
        "help": help,
        "parse": parse,
        "short": short,
        "choices": choices,
        "metavar": metavar,
        "group": group,
        "positional": positional,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def reference_table(infos: tuple[SettingInfo, ...]) -> str:
    """The settings reference page (Markdown) for these settings, in their order."""
    lines = [
        "# Settings reference",
        "",
        "Every setting can be given on the command line, as a `ROOTSERVE_*` environment",
        "variable, or in the `[tool.rootserve]` table of `pyproject.toml` (key spelled as the",
        "flag without its dashes, `-` or `_` alike). The command line wins over the environment,",
        "which wins over the file. This page is generated from `rootserve/config.py`.",
        "",
        "| setting | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for info in infos:
        if info.positional:
            name = f"`{info.metavar}` (argument)"
        elif info.switch:
            name = f"`{info.flag}` / `--no-{info.flag[2:]}`"
        else:
            name = f"`{info.flag} {info.metavar or info.name.upper()}`"
        default = "(none)" if info.default in (None, []) else f"`{info.default!r}`"
        text = info.help.replace("|", "\\|")
        if info.choices:
            text += " One of " + ", ".join(f"`{c}`" for c in info.choices) + "."
        lines.append(f"| {name} | `{info.env}` | {default} | {text} |")
    return "\n".join(lines) + "\n"
