"""Every setting, declared once.

How this works: `Config` is a frozen dataclass. Each field is declared with `setting(...)`,
which stores its help text, flag spelling and parser in the field's metadata. From that one
list come the command line (`cli.py` builds argparse from `fields(Config)`), the
`[tool.rootserve]` table of pyproject.toml, the `ROOTSERVE_*` environment variables and the
settings reference page of the docs (`reference_markdown`). Adding a setting is one field.

Precedence, lowest first: the default, `[tool.rootserve]`, `ROOTSERVE_*`, the command line.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from rootserve.setting import (
    SettingInfo,
    parse_bool,
    parse_count,
    parse_port,
    parse_root_path,
    parse_seconds,
    parse_size,
    reference_table,
    setting,
)
from rootserve.units import KIB, MIB, SECONDS

__all__ = [
    "ENV_PREFIX",
    "Config",
    "ConfigError",
    "SettingInfo",
    "default",
    "load_config",
    "parse_size",
    "reference_markdown",
    "setting_info",
]

ENV_PREFIX: Final = "ROOTSERVE_"


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the setting and the fix."""


@dataclass(frozen=True)
class Config:
    """The settings of one rootserve run. Sizes are bytes, durations seconds."""

    # -- the app
    app: str | None = setting(
        None,
        "The app to serve: `module:attr`, `module:factory()` or `path/to/file.py:attr`. "
        "Without it, rootserve serves its built-in demo app.",
        positional=True,
        metavar="APP",
        group="app",
    )
    factory: bool = setting(
        False, "Treat APP as a factory: call it with no arguments to get the app.", group="app"
    )
    app_dir: str = setting(
        ".", "Folder put first on sys.path before APP is imported.", metavar="DIR", group="app"
    )
    interface: str = setting(
        "auto",
        "The contract APP speaks. `auto` decides from the callable: a coroutine function (or "
        "an object whose `__call__` is one) or a 3-parameter callable is ASGI 3; a "
        "2-parameter callable is WSGI.",
        choices=("auto", "asgi", "wsgi"),
        group="app",
    )
    lifespan: str = setting(
        "auto",
        "ASGI lifespan events: `on` requires them (a failure stops the server), `auto` uses "
        "them when the app supports them, `off` never sends them.",
        choices=("auto", "on", "off"),
        group="app",
    )
    root_path: str = setting(
        "",
        "The URL prefix the app is mounted under behind a proxy (ASGI `root_path`, WSGI "
        "`SCRIPT_NAME`).",
        metavar="PATH",
        parse=parse_root_path,
        group="app",
    )
    threads: int = setting(
        8,
        "App threads per worker for a WSGI app: requests beyond them wait in a queue. "
        "The default is measured (benchmarks/): a CPU-bound app runs as fast on 8 threads "
        "as on 1 (requests reach the threads in batches), and 8 let an app that waits on a "
        "database or a remote call serve 8 requests at once.",
        parse=parse_count,
        metavar="N",
        group="app",
    )
    workers: int = setting(
        0,
        "Worker processes under a supervisor, which holds the listening sockets, replaces "
        "a worker that dies, and drains them all on TERM or INT (TTIN/TTOU: one more or "
        "one fewer). 0 serves in this one process, with no supervisor.",
        parse=parse_count,
        short="-w",
        metavar="N",
        group="app",
    )
    pid: str = setting(
        "",
        "Write the pid of the server (the supervisor's, with --workers) to this file, and "
        "remove it at exit.",
        metavar="PATH",
        group="app",
    )
    # -- where to listen
    host: str = setting("127.0.0.1", "Address to listen on.", group="listen")
    port: int = setting(
        8000, "Port to listen on (0 picks a free one).", parse=parse_port, group="listen"
    )
    bind: list[str] = setting(
        [],
        "Listen here instead of --host/--port; repeatable. `HOST:PORT`, `[::1]:PORT`, "
        "`unix:PATH` or `fd://N` (an inherited socket).",
        metavar="ADDRESS",
        group="listen",
    )
    backlog: int = setting(
        2048, "Pending connections the kernel may queue.", parse=parse_count, group="listen"
    )
    loop: str = setting(
        "auto",
        "Event loop: `uvloop` when importable (auto), or plain `asyncio`.",
        choices=("auto", "asyncio", "uvloop"),
        group="listen",
    )
    ws: str = setting(
        "auto",
        "WebSocket (RFC 6455) for ASGI apps: `auto` switches a valid handshake to a WebSocket "
        "session (ASGI `websocket` scope); `off` answers it as a plain HTTP request, as it "
        "always is for a WSGI app.",
        choices=("auto", "off"),
        group="websocket",
    )
    ws_per_message_deflate: bool = setting(
        True,
        "Offer WebSocket permessage-deflate compression (RFC 7692) to clients that ask.",
        group="websocket",
    )
    # -- logging
    log_level: str = setting(
        "info",
        "Least severe message logged.",
        choices=("critical", "error", "warning", "info", "debug"),
        group="logging",
    )
    access_log: bool = setting(True, "Log one line per request.", group="logging")
    # -- limits (RFC 9112 framing limits and resource bounds)
    max_request_line: int = setting(
        8 * KIB,
        "Longest request line in bytes; longer gets 414 URI Too Long.",
        parse=parse_size,
        metavar="BYTES",
        group="limits",
    )
    max_header_size: int = setting(
        16 * KIB,
        "Most bytes of header fields in one request; more gets 431.",
        parse=parse_size,
        metavar="BYTES",
        group="limits",
    )
    max_header_count: int = setting(
        100,
        "Most header fields in one request; more gets 431.",
        parse=parse_count,
        metavar="N",
        group="limits",
    )
    max_body_size: int = setting(
        100 * MIB,
        "Largest request body in bytes; larger gets 413. 0 means no limit.",
        parse=parse_size,
        metavar="BYTES",
        group="limits",
    )
    limit_concurrency: int = setting(
        0,
        "Most requests in progress at once; beyond it new requests get 503. 0 means no limit.",
        parse=parse_count,
        metavar="N",
        group="limits",
    )
    timeout_keep_alive: float = setting(
        5 * SECONDS,
        "Close a keep-alive connection idle this many seconds (0: no limit).",
        parse=parse_seconds,
        metavar="SECONDS",
        group="limits",
    )
    timeout_header: float = setting(
        10 * SECONDS,
        "A client gets this many seconds to send a request's headers (slowloris guard); "
        "then 408 and the connection is closed (0: no limit).",
        parse=parse_seconds,
        metavar="SECONDS",
        group="limits",
    )
    timeout_body: float = setting(
        30 * SECONDS,
        "A request body gets this many seconds to begin, and to go on after each pause; "
        "beyond that it must keep up --min-body-rate. A body that falls behind gets 408 and "
        "the connection is closed (slow-body guard; 0: no limit).",
        parse=parse_seconds,
        metavar="SECONDS",
        group="limits",
    )
    min_body_rate: int = setting(
        1 * KIB,
        "The slowest a request body may arrive, in bytes per second, once its "
        "--timeout-body grace is used (0: only --timeout-body between reads).",
        parse=parse_size,
        metavar="BYTES",
        group="limits",
    )
    timeout_worker_healthcheck: float = setting(
        30 * SECONDS,
        "With --workers: a worker whose event loop has not run for this many seconds is "
        "hung (an ASGI app blocking its loop); the stacks of its threads are logged, then it "
        "is killed and replaced. A WSGI app busy on every app thread is not hung: its loop "
        "still runs (0: no check). gunicorn calls its nearest setting --timeout.",
        parse=parse_seconds,
        metavar="SECONDS",
        group="limits",
    )
    shutdown_delay: float = setting(
        0 * SECONDS,
        "On TERM or INT, keep serving this many seconds before draining: the time a load "
        "balancer or Kubernetes needs to stop sending to this server (0: drain at once).",
        parse=parse_seconds,
        metavar="SECONDS",
        group="limits",
    )
    timeout_graceful: float = setting(
        30 * SECONDS,
        "On shutdown, wait this long for requests in progress before cancelling them "
        "(0: wait as long as they take). Open WebSockets are closed with 1012 first.",
        parse=parse_seconds,
        metavar="SECONDS",
        group="limits",
    )
    ws_max_size: int = setting(
        16 * MIB,
        "Largest WebSocket message in bytes (after decompression); larger closes the "
        "connection with 1009 (0: no limit).",
        parse=parse_size,
        metavar="BYTES",
        group="websocket",
    )
    ws_max_queue: int = setting(
        32,
        "WebSocket messages received and not yet taken by the app before reading pauses "
        "(0: no limit).",
        parse=parse_count,
        metavar="N",
        group="websocket",
    )
    ws_ping_interval: float = setting(
        20 * SECONDS,
        "Send a WebSocket ping every this many seconds (0: never).",
        parse=parse_seconds,
        metavar="SECONDS",
        group="websocket",
    )
    ws_ping_timeout: float = setting(
        20 * SECONDS,
        "Fail a WebSocket (close code 1011) when the pong to a ping does not come back "
        "within this many seconds (0: no limit).",
        parse=parse_seconds,
        metavar="SECONDS",
        group="websocket",
    )
    server_header: bool = setting(True, "Add `Server: rootserve` to responses.", group="server")
    date_header: bool = setting(True, "Add a `Date` header to responses.", group="server")


def _info(f: dataclasses.Field[Any]) -> SettingInfo:
    meta = f.metadata
    default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
    return SettingInfo(
        name=f.name,
        help=meta["help"],
        parse=meta["parse"],
        default=default,
        flag="--" + f.name.replace("_", "-"),
        env=ENV_PREFIX + f.name.upper(),
        short=meta["short"],
        choices=meta["choices"],
        metavar=meta["metavar"],
        switch=isinstance(default, bool),
        repeat=isinstance(default, list),
        positional=meta["positional"],
        group=meta["group"],
    )


def default(name: str) -> Any:
    """The default of one setting, as declared above: for objects that take their defaults
    from the settings (`Limits`, the WebSocket settings) instead of writing them again."""
    return _DEFAULTS[name]


def setting_info() -> tuple[SettingInfo, ...]:
    """Every setting in declaration order."""
    return tuple(_info(f) for f in fields(Config))


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
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    table = data.get("tool", {}).get("rootserve", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.rootserve] must be a table")
    return table


def load_config(
    cli: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    pyproject: Path | None = None,
) -> Config:
    """Merge defaults, `[tool.rootserve]`, `ROOTSERVE_*` and the values given on the CLI."""
    environ = os.environ if environ is None else environ
    infos = {info.name: info for info in setting_info()}
    values: dict[str, Any] = {}
    if pyproject is not None:
        for key, raw in read_pyproject(pyproject).items():
            name = key.replace("-", "_")
            if name not in infos:
                raise ConfigError(f"{pyproject}: [tool.rootserve] has no setting {key!r}")
            values[name] = _convert(infos[name], raw, f"{pyproject}: {key}")
    for name, info in infos.items():
        if info.env in environ:
            values[name] = _convert(info, environ[info.env], info.env)
    values.update(cli)
    return Config(**values)


def reference_markdown() -> str:
    """The settings reference page, made from the same declarations as the CLI."""
    return reference_table(setting_info())


_DEFAULTS: Final = {info.name: info.default for info in setting_info()}
