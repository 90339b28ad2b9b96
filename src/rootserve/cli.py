"""The `rootserve` command: argparse made from config.py's one list of settings."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rootserve import __version__
from rootserve.config import Config, ConfigError, SettingInfo, load_config, setting_info
from rootserve.exit_codes import EXIT_APP, EXIT_OK, EXIT_USAGE
from rootserve.loading import AppLoadError, load_configured_app
from rootserve.observe.access import check_access_log
from rootserve.observe.logs import setup_logging
from rootserve.server.probes import ProbeServer, server_probes
from rootserve.server.proxied import check_proxy_settings
from rootserve.server.tls import check_settings as check_tls_settings
from rootserve.server.worker import Server
from rootserve.supervisor.sockets import BindError, bind_all, bind_metrics, systemd_sockets

__all__ = ["EXIT_APP", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

_GROUP_TITLES = {
    "app": "the app",
    "workers": "workers and reload",
    "listen": "where to listen",
    "logging": "logging",
    "limits": "limits and timeouts",
    "websocket": "WebSocket (ASGI apps)",
    "http2": "HTTP/2",
    "server": "responses",
    "tls": "TLS",
    "proxy": "behind a proxy",
    "metrics": "metrics and health probes",
    "static": "static files",
    "learn": "learning and debugging",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line naming the problem and where to look, exit 2 (bad usage).
        self.exit(EXIT_USAGE, f"error: {message} (see rootserve --help)\n")


def _checked(info: SettingInfo) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return info.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = info.name
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rootserve",
        description="Serve a WSGI or ASGI app over HTTP/1.1 and HTTP/2.",
        argument_default=argparse.SUPPRESS,
        epilog="Every option is also a ROOTSERVE_* environment variable and a key of "
        "[tool.rootserve] in pyproject.toml. Exit codes: 0 clean stop, 2 bad usage, "
        "3 the app could not be loaded or started.",
    )
    groups = {key: parser.add_argument_group(title) for key, title in _GROUP_TITLES.items()}
    for info in setting_info():
        group = groups[info.group]
        text = info.help.replace("%", "%%").replace("`", "")
        if info.positional:
            group.add_argument(info.name, nargs="?", metavar=info.metavar, help=text)
            continue
        if info.default not in (None, [], "") and not info.switch:
            shown = ",".join(info.default) if info.repeat else str(info.default)
            text += f" (default: {shown})".replace("%", "%%")
        names = [info.flag] + ([info.short] if info.short else [])
        if info.switch:
            text += f" (default: {'on' if info.default else 'off'})"
            group.add_argument(
                *names, dest=info.name, action=argparse.BooleanOptionalAction, help=text
            )
        elif info.repeat:
            group.add_argument(
                *names,
                dest=info.name,
                action="append",
                type=_checked(info),
                metavar=info.metavar,
                help=text,
            )
        else:
            group.add_argument(
                *names,
                dest=info.name,
                type=_checked(info),
                choices=info.choices,
                metavar=info.metavar,
                help=text,
            )
    parser.add_argument("--version", action="version", version=f"rootserve {__version__}")
    return parser


def listen_addresses(config: Config) -> list[str]:
    """--bind, else the sockets systemd passed (socket activation), else --host/--port."""
    if config.bind:
        return list(config.bind)
    activated = systemd_sockets()
    if activated:
        return activated
    host = f"[{config.host}]" if ":" in config.host else config.host
    return [f"{host}:{config.port}"]


def _serve_alone(server: Server, metrics_sock: socket.socket | None) -> int:
    """One process, no supervisor; with --metrics-bind, the probes in a thread beside it."""
    if metrics_sock is None:
        return server.run()
    ready, alive = server_probes(server, server.config)
    probes = ProbeServer(server.config, metrics_sock, ready, alive)
    probes.start()
    try:
        return server.run()
    finally:
        probes.stop()


def _uvloop_importable() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    try:
        config = load_config(args, pyproject=Path("pyproject.toml"))
        check_access_log(config)
        setup_logging(config.log_level, log_format=config.log_format, log_config=config.log_config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if config.loop == "uvloop" and not _uvloop_importable():
        print("error: --loop uvloop: uvloop is not installed (pip install uvloop)", file=sys.stderr)
        return EXIT_USAGE
    try:
        check_tls_settings(config)  # once, before any app, socket or worker
        if config.static:  # each /PREFIX=DIR well formed, each DIR a folder
            from rootserve.server.static import parse_static  # (see server/assembly.py)

            parse_static(config.static)
        check_proxy_settings(config)  # --forwarded-allow-ips entries; --proxy-protocol
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    supervised = bool(config.workers or config.reload)
    if config.reload:
        from rootserve.supervisor.reload import reload_roots  # (see Arbiter below)

        try:
            reload_roots(config)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    app: object = None
    interface = config.interface
    if not supervised:  # (each worker imports the app itself: the supervisor stays small)
        try:
            app, interface = load_configured_app(config)
        except AppLoadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_APP
        if interface == "wsgi" and config.threads < 1:
            print("error: --threads must be at least 1 for a WSGI app", file=sys.stderr)
            return EXIT_USAGE
    try:
        sockets = bind_all(listen_addresses(config), config.backlog)
    except BindError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    metrics_sock, metrics_cleanup = None, None
    if config.metrics_bind:
        try:
            metrics_sock, metrics_cleanup = bind_metrics(config)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    pid_file = Path(config.pid) if config.pid else None
    try:
        if pid_file is not None:
            try:
                pid_file.write_text(f"{os.getpid()}\n")
            except OSError as exc:
                pid_file = None
                print(f"error: --pid {config.pid}: {exc.strerror}", file=sys.stderr)
                return EXIT_USAGE
        if supervised:
            # Imported only for workers or --reload: one process serving alone never needs
            # the supervisor's modules, and starts sooner without them.
            from rootserve.supervisor.arbiter import Arbiter

            return Arbiter(config, sockets, metrics_sock=metrics_sock).run()
        return _serve_alone(Server(config, app, sockets, interface=interface), metrics_sock)
    finally:
        for sock in sockets:
            sock.close()
        if metrics_sock is not None:
            metrics_sock.close()
        if metrics_cleanup is not None:
            metrics_cleanup()
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)
