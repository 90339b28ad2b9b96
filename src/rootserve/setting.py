"""What a setting is: its declaration (`setting`, `SettingInfo`), the parsers of its
values, each with a plain-language error, and how values from pyproject.toml, the
environment and the command line are merged. The settings themselves are declared in
config.py.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rootserve.units import GIB, KIB, MIB

__all__ = [
    "ConfigError",
    "SettingInfo",
    "merge_settings",
    "parse_bool",
    "parse_count",
    "parse_port",
    "parse_root_path",
    "parse_seconds",
    "parse_size",
    "reference_table",
    "setting",
    "settings_of",
]

_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB, "mib": MIB}
_SIZE_UNITS |= {"g": GIB, "gb": GIB, "gib": GIB}


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the setting and the fix."""


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
    elsewhere: str = ""  # the same setting's name in uvicorn, gunicorn, granian


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
    elsewhere: str = "",
) -> Any:
    """Declare a Config field; the flag and env var names come from the field name.
    `elsewhere` names the nearest setting of the servers users come from."""
    meta = {
        "elsewhere": elsewhere,
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
        if info.elsewhere:
            text += f" Elsewhere: {info.elsewhere}."
        lines.append(f"| {name} | `{info.env}` | {default} | {text} |")
    return "\n".join(lines) + "\n"


def settings_of(cls: type, env_prefix: str) -> tuple[SettingInfo, ...]:
    """What each field of the dataclass `cls`, declared with `setting`, says, in order."""
    return tuple(_info(f, env_prefix) for f in dataclasses.fields(cls))


def _info(f: dataclasses.Field[Any], env_prefix: str) -> SettingInfo:
    meta = f.metadata
    default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
    return SettingInfo(
        name=f.name,
        help=meta["help"],
        parse=meta["parse"],
        default=default,
        flag="--" + f.name.replace("_", "-"),
        env=env_prefix + f.name.upper(),
        short=meta["short"],
        choices=meta["choices"],
        metavar=meta["metavar"],
        switch=isinstance(default, bool),
        repeat=isinstance(default, list),
        positional=meta["positional"],
        group=meta["group"],
        elsewhere=meta["elsewhere"],
    )


def merge_settings(
    infos: tuple[SettingInfo, ...],
    cli: Mapping[str, Any],
    *,
    environ: Mapping[str, str],
    pyproject: Path | None = None,
) -> dict[str, Any]:
    """The values set by `[tool.rootserve]`, then the environment, then the command line
    (`cli`, parsed already), each overriding the one before; defaults are left out."""
    by_name = {info.name: info for info in infos}
    values: dict[str, Any] = {}
    if pyproject is not None:
        for key, raw in read_pyproject(pyproject).items():
            name = key.replace("-", "_")
            if name not in by_name:
                raise ConfigError(f"{pyproject}: [tool.rootserve] has no setting {key!r}")
            values[name] = _convert(by_name[name], raw, f"{pyproject}: {key}")
    for name, info in by_name.items():
        if info.env in environ:
            values[name] = _convert(info, environ[info.env], info.env)
    values.update(cli)
    return values


def _convert(info: SettingInfo, raw: Any, source: str) -> Any:
    """Turn a raw value from TOML or the environment into the field's type."""
    try:
        if info.repeat:
            items = raw if isinstance(raw, list) else [s for s in str(raw).split(",") if s]
            value: Any = [info.parse(str(item).strip()) for item in items]
        elif info.switch:
            value = raw if isinstance(raw, bool) else parse_bool(str(raw))
        elif isinstance(raw, bool):
            raise ValueError(f"{raw!r} is not a {info.metavar or 'value'}")
        else:
            value = info.parse(str(raw))
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if info.choices and value not in info.choices:
        allowed = ", ".join(info.choices)
        raise ConfigError(f"{source}: {raw!r} is not one of {allowed}")
    return value


def read_pyproject(path: Path) -> dict[str, Any]:
    """The `[tool.rootserve]` table of a pyproject.toml, or {} when there is none."""
    if not path.is_file():
        return {}
    import tomllib  # (only when there is a file: the parser costs a start 4 ms)

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    table = data.get("tool", {}).get("rootserve", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.rootserve] must be a table")
    return table
