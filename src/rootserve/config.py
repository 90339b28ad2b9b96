"""Every setting, declared once.

How this works: `Config` is a frozen dataclass. Each field is declared with `setting(...)`,
which stores its help text, flag spelling and parser in the field's metadata. From that one
list come the command line (`cli.py` builds argparse from `fields(Config)`), the
`[tool.rootserve]` table of pyproject.toml, the `ROOTSERVE_*` environment variables and the
settings reference page of the docs (`reference_markdown`). Adding a setting is one field.

Precedence, lowest first: the default, `[tool.rootserve]`, `ROOTSERVE_*`, the command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from rootserve.config_edge import EdgeSettings
from rootserve.setting import (
    ConfigError,
    SettingInfo,
    merge_settings,
    parse_count,
    parse_port,
    parse_root_path,
    parse_seconds,
    parse_size,
    reference_table,
    setting,
    settings_of,
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


@dataclass(frozen=True)
class Config(EdgeSettings):
    """The settings of one rootserve run. Sizes are bytes, durations seconds. Those of TLS,
    proxies, the access log's shape, metrics and static files are in config_edge.py."""

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
        False,
        "Treat APP as a factory: call it with no arguments to get the app.",
        group="app",
        elsewhere="uvicorn `--factory`",
    )
    app_dir: str = setting(
        ".",
        "Folder put first on sys.path before APP is imported.",
        metavar="DIR",
        group="app",
        elsewhere="uvicorn `--app-dir`, gunicorn `--chdir`",
    )
    interface: str = setting(
        "auto",
        "The contract APP speaks. `auto` decides from the callable: a coroutine function (or "
        "an object whose `__call__` is one) or a 3-parameter callable is ASGI 3; a "
        "2-parameter callable is WSGI.",
        choices=("auto", "asgi", "wsgi"),
        group="app",
        elsewhere="uvicorn `--interface` (asgi3, asgi2 or wsgi there)",
    )
    lifespan: str = setting(
        "auto",
        "ASGI lifespan events: `on` requires them (a failure stops the server), `auto` uses "
        "them when the app supports them, `off` never sends them.",
        choices=("auto", "on", "off"),
        group="app",
        elsewhere="uvicorn `--lifespan`",
    )
    root_path: str = setting(
        "",
        "The URL prefix the app is mounted under behind a proxy (ASGI `root_path`, WSGI "
        "`SCRIPT_NAME`).",
        metavar="PATH",
        parse=parse_root_path,
        group="app",
        elsewhere="uvicorn `--root-path`",
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
        elsewhere="gunicorn `--threads`",
    )
    workers: int = setting(
        0,
        "Worker processes under a supervisor, which holds the listening sockets, replaces "
        "a worker that dies, and drains them all on TERM or INT (HUP: a rolling restart; "
        "TTIN/TTOU: one more or one fewer). 0 serves in this one process, with no "
        "supervisor.",
        parse=parse_count,
        short="-w",
        metavar="N",
        group="workers",
        elsewhere="uvicorn `--workers`, gunicorn `-w`, granian `--workers`",
    )
    pid: str = setting(
        "",
        "Write the pid of the server (the supervisor's, with --workers) to this file, and "
        "remove it at exit.",
        metavar="PATH",
        group="workers",
        elsewhere="gunicorn `--pid`",
    )
    limit_max_requests: int = setting(
        0,
        "Retire a worker once it has served this many requests (plus its jitter): a new "
        "worker starts, and the old one drains once it is ready. Without --workers the "
        "server stops instead, for a process manager to start again (0: no limit).",
        parse=parse_count,
        metavar="N",
        group="workers",
        elsewhere="uvicorn `--limit-max-requests`, gunicorn `--max-requests`",
    )
    max_requests_jitter: int = setting(
        0,
        "Add a random 0 to N to each worker's --limit-max-requests, so that workers "
        "started together do not retire together.",
        parse=parse_count,
        metavar="N",
        group="workers",
        elsewhere="gunicorn `--max-requests-jitter`",
    )
    limit_worker_memory: int = setting(
        0,
        "Retire a worker, as --limit-max-requests does, once its resident memory (RSS) "
        "passes this many MiB: it is replaced before the kernel's OOM killer would cut its "
        "requests off (0: no limit).",
        parse=parse_count,
        metavar="MIB",
        group="workers",
        elsewhere="granian `--workers-max-rss`, uWSGI `reload-on-rss`",
    )
    reload: bool = setting(
        False,
        "Restart the worker when a watched file changes (development). When the new code "
        "fails to import or start, the old worker goes on serving until the next change.",
        group="workers",
        elsewhere="uvicorn `--reload`, gunicorn `--reload`",
    )
    reload_dir: list[str] = setting(
        [],
        "A folder to watch with --reload; repeatable (default: --app-dir).",
        metavar="DIR",
        group="workers",
        elsewhere="uvicorn `--reload-dir`",
    )
    reload_include: list[str] = setting(
        [],
        "A file name pattern --reload watches besides `*.py`; repeatable.",
        metavar="GLOB",
        group="workers",
        elsewhere="uvicorn `--reload-include`",
    )
    reload_exclude: list[str] = setting(
        [],
        "A file or folder name pattern --reload ignores, matched against each part of the "
        "path below the watched folder; repeatable. Always ignored: `.*` (.git, .venv, "
        "editors' swap files), `__pycache__`, `*.py[cod]`, `*~`, `venv`, `node_modules`, "
        "`site-packages`.",
        metavar="GLOB",
        group="workers",
        elsewhere="uvicorn `--reload-exclude`",
    )
    # -- where to listen
    host: str = setting(
        "127.0.0.1", "Address to listen on.", group="listen", elsewhere="uvicorn `--host`"
    )
    port: int = setting(
        8000,
        "Port to listen on (0 picks a free one).",
        parse=parse_port,
        group="listen",
        elsewhere="uvicorn `--port`",
    )
    bind: list[str] = setting(
        [],
        "Listen here instead of --host/--port; repeatable. `HOST:PORT`, `[::1]:PORT`, "
        "`unix:PATH` or `fd://N` (an inherited socket).",
        metavar="ADDRESS",
        group="listen",
        elsewhere="uvicorn `--uds` and `--fd`, gunicorn `-b`",
    )
    backlog: int = setting(
        2048,
        "Pending connections the kernel may queue.",
        parse=parse_count,
        group="listen",
        elsewhere="uvicorn and gunicorn `--backlog`",
    )
    loop: str = setting(
        "auto",
        "Event loop: `uvloop` when importable (auto), or plain `asyncio`.",
        choices=("auto", "asyncio", "uvloop"),
        group="listen",
        elsewhere="uvicorn `--loop`",
    )
    # -- logging
    log_level: str = setting(
        "info",
        "Least severe message logged.",
        choices=("critical", "error", "warning", "info", "debug"),
        group="logging",
        elsewhere="uvicorn and gunicorn `--log-level`",
    )
    access_log: bool = setting(
        True,
        "Log one line per request.",
        group="logging",
        elsewhere="uvicorn `--access-log`, gunicorn `--access-logfile`",
    )
    # -- limits (RFC 9112 framing limits and resource bounds)
    max_request_line: int = setting(
        8 * KIB,
        "Longest request line in bytes; longer gets 414 URI Too Long.",
        parse=parse_size,
        metavar="BYTES",
        group="limits",
        elsewhere="gunicorn `--limit-request-line`",
    )
    max_header_size: int = setting(
        16 * KIB,
        "Most bytes of header fields in one request; more gets 431.",
        parse=parse_size,
        metavar="BYTES",
        group="limits",
        elsewhere=(
            "uvicorn `--h11-max-incomplete-event-size`, "
            "gunicorn `--limit-request-field_size` (per field there)"
        ),
    )
    max_header_count: int = setting(
        100,
        "Most header fields in one request; more gets 431.",
        parse=parse_count,
        metavar="N",
        group="limits",
        elsewhere="gunicorn `--limit-request-fields`",
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
        elsewhere="uvicorn `--limit-concurrency`",
    )
    timeout_keep_alive: float = setting(
        5 * SECONDS,
        "Close a keep-alive connection idle this many seconds (0: no limit).",
        parse=parse_seconds,
        metavar="SECONDS",
        group="limits",
        elsewhere="uvicorn `--timeout-keep-alive`, gunicorn `--keep-alive`",
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
        "still runs (0: no check).",
        parse=parse_seconds,
        metavar="SECONDS",
        group="workers",
        elsewhere="uvicorn `--timeout-worker-healthcheck`, gunicorn `--timeout`",
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
        "(0: wait as long as they take). Open WebSockets are closed first: 1001 Going Away, "
        "or 1012 Service Restart when a supervisor replaces the worker.",
        parse=parse_seconds,
        metavar="SECONDS",
        group="limits",
        elsewhere="uvicorn `--timeout-graceful-shutdown`, gunicorn `--graceful-timeout`",
    )
    server_header: bool = setting(
        True,
        "Add `Server: rootserve` to responses.",
        group="server",
        elsewhere="uvicorn `--server-header`",
    )
    date_header: bool = setting(
        True,
        "Add a `Date` header to responses.",
        group="server",
        elsewhere="uvicorn `--date-header`",
    )

    @property
    def tracing(self) -> bool:
        """Whether these settings trace: --trace, or a --trace-path or json format asked for."""
        return self.trace or bool(self.trace_path) or self.trace_format == "json"


def default(name: str) -> Any:
    """The default of one setting, as declared above: for objects that take their defaults
    from the settings (`Limits`, the WebSocket settings) instead of writing them again."""
    return _DEFAULTS[name]


def setting_info() -> tuple[SettingInfo, ...]:
    """Every setting in declaration order."""
    return settings_of(Config, ENV_PREFIX)


def load_config(
    cli: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    pyproject: Path | None = None,
) -> Config:
    """Merge defaults, `[tool.rootserve]`, `ROOTSERVE_*` and the values given on the CLI."""
    environ = os.environ if environ is None else environ
    return Config(**merge_settings(setting_info(), cli, environ=environ, pyproject=pyproject))


def reference_markdown() -> str:
    """The settings reference page, made from the same declarations as the CLI."""
    return reference_table(setting_info())


_DEFAULTS: Final = {info.name: info.default for info in setting_info()}
