"""Turn `--bind` addresses (and --metrics-bind) into listening sockets, bound before any
worker starts."""

from __future__ import annotations

import importlib.util
import os
import socket
import stat
from collections.abc import Callable

from rootserve.config import Config
from rootserve.observe.metrics import use_multiprocess_dir

__all__ = ["BindError", "bind_all", "bind_metrics", "parse_address", "systemd_sockets"]

SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): the first passed descriptor


class BindError(Exception):
    """An address that cannot be listened on; the message names the address and the fix."""


def parse_address(text: str) -> tuple[str, str | int | tuple[str, int]]:
    """`unix:PATH`, `fd://N`, `[v6]:PORT` or `HOST:PORT` (HOST may be empty: all IPv4)."""
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise BindError(f"{text!r}: unix: needs a path, as in unix:/tmp/app.sock")
        return ("unix", path)
    if text.startswith("fd://"):
        try:
            return ("fd", int(text[5:]))
        except ValueError:
            raise BindError(f"{text!r}: fd:// needs a file descriptor number") from None
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise BindError(f"{text!r}: an IPv6 address is written [ADDRESS]:PORT")
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise BindError(f"{text!r}: write HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N")
    try:
        number = int(port)
    except ValueError:
        raise BindError(f"{text!r}: the port must be a number") from None
    if not 0 <= number <= 65535:
        raise BindError(f"{text!r}: the port must be 0-65535")
    return ("tcp", (host or "0.0.0.0", number))


def _tcp(host: str, port: int, backlog: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"cannot resolve {host!r}: {exc.strerror}") from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        hint = " (stop the other server or pick another --port)" if exc.errno == 98 else ""
        raise BindError(f"cannot listen on {shown}: {exc.strerror}{hint}") from None
    sock.setblocking(False)
    return sock


def _unix(path: str, backlog: int) -> socket.socket:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)  # a stale socket from an earlier run
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on unix:{path}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def _fd(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"fd://{fd} is not an open socket: {exc.strerror}") from None
    if sock.type != socket.SOCK_STREAM:
        raise BindError(f"fd://{fd} is not a stream socket")
    sock.setblocking(False)
    return sock


def bind_all(addresses: list[str], backlog: int) -> list[socket.socket]:
    """Listening sockets for every address, or BindError (after closing any made)."""
    sockets: list[socket.socket] = []
    try:
        for text in addresses:
            _kind, where = parse_address(text)
            if isinstance(where, tuple):
                sockets.append(_tcp(where[0], where[1], backlog))
            elif isinstance(where, int):
                sockets.append(_fd(where))
            else:
                sockets.append(_unix(where, backlog))
    except BindError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def systemd_sockets(environ: dict[str, str] | None = None) -> list[str]:
    """`fd://N` addresses for the sockets systemd passed (socket activation, see
    sd_listen_fds(3)): `LISTEN_FDS` descriptors from 3 on, when `LISTEN_PID` is this
    process. The variables are removed, so that no child takes the sockets for its own."""
    env = os.environ if environ is None else environ
    if env.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(env.get("LISTEN_FDS", "0"))
    except ValueError:
        raise BindError(f"LISTEN_FDS={env.get('LISTEN_FDS')!r} is not a number") from None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    return [f"fd://{fd}" for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count)]


def bind_metrics(config: Config) -> tuple[socket.socket, Callable[[], None]]:
    """Bind --metrics-bind and prepare prometheus_client's multiprocess folder; return the
    socket and the clean-up. ValueError: one line naming the fix."""
    if importlib.util.find_spec("prometheus_client") is None:
        raise ValueError("--metrics-bind needs prometheus_client: pip install 'rootserve[metrics]'")
    try:
        (sock,) = bind_all([config.metrics_bind], 64)
    except BindError as exc:
        raise ValueError(f"--metrics-bind: {exc}") from None
    return sock, use_multiprocess_dir()
