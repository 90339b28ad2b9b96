"""--proxy-headers and --forwarded-allow-ips over real sockets, for an ASGI and a WSGI app
(tests/e2e/proxy_support.py has the echo apps and what they saw, as one `Seen`); the
settings' checks on the command line. The PROXY protocol: test_proxy_protocol.py."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.proxy_support import (
    INTERFACES,
    TIMEOUT,
    Seen,
    asgi_echo,
    ask,
    direct,
    request_bytes,
    served,
    served_on_unix,
    unix_ask,
)
from tests.helpers import run_cli, serve
from tests.tls_support import issue
from websockets.sync.client import ClientConnection, connect

# What a client asked for, as the X-Forwarded-* headers of a trusted proxy say it.
X_FORWARDED = [
    ("X-Forwarded-For", "203.0.113.7"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "shop.example"),
    ("X-Forwarded-Port", "8443"),
    ("X-Forwarded-Prefix", "/api"),
]


# -- proxy headers ----------------------------------------------------------------------


@pytest.mark.parametrize("interface", INTERFACES)
def test_x_forwarded_from_a_trusted_peer_is_applied(interface: str) -> None:
    with served(interface, proxy_headers=True, forwarded_allow_ips=["127.0.0.1"]) as port:
        got, _ = ask(port, interface, X_FORWARDED)
    # The port is the client's (8443, not https' 443), so the Host the app rebuilds URLs
    # from names it too.
    assert got == Seen(
        ("203.0.113.7", 0), "https", ("shop.example", 8443), "shop.example:8443", "/api", "/x"
    )


@pytest.mark.parametrize("interface", INTERFACES)
def test_x_forwarded_host_with_its_port_and_the_default_port(interface: str) -> None:
    headers = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "shop.example")]
    with served(interface, proxy_headers=True) as port:
        got, _ = ask(port, interface, headers)
        with_port, _ = ask(port, interface, [("X-Forwarded-Host", "shop.example:8080")])
        port_only, _ = ask(port, interface, [("X-Forwarded-Port", "8443")])
    assert (got.scheme, got.server, got.host) == ("https", ("shop.example", 443), "shop.example")
    assert (with_port.scheme, with_port.server, with_port.host) == (
        "http",
        ("shop.example", 8080),
        "shop.example:8080",
    )
    # A port alone: the server's port; the Host stays as the client sent it.
    assert (port_only.server, port_only.host) == (("127.0.0.1", 8443), "app.internal:8000")


@pytest.mark.parametrize("interface", INTERFACES)
def test_forwarded_is_applied_and_x_forwarded_ignored_beside_it(interface: str) -> None:
    headers = [
        ("Forwarded", 'for="[2001:db8::7]:4711";proto=https;host=shop.example'),
        *X_FORWARDED,
    ]
    with served(interface, proxy_headers=True) as port:
        got, _ = ask(port, interface, headers)
    # Nothing of X-Forwarded-*: not its client, port or prefix.
    assert got == Seen(
        ("2001:db8::7", 4711), "https", ("shop.example", 443), "shop.example", "", "/x"
    )


@pytest.mark.parametrize("interface", INTERFACES)
def test_the_prefix_replaces_root_path_and_root_path_stays_without_it(interface: str) -> None:
    with served(interface, proxy_headers=True, root_path="/base") as port:
        plain, _ = ask(port, interface, [("X-Forwarded-For", "203.0.113.7")])
        prefixed, _ = ask(port, interface, [("X-Forwarded-Prefix", "/api/")])
    assert (plain.root_path, plain.path) == ("/base", "/x")
    assert (prefixed.root_path, prefixed.path) == ("/api", "/x")


@pytest.mark.parametrize("interface", INTERFACES)
def test_an_untrusted_peer_changes_nothing(interface: str) -> None:
    headers = [("Forwarded", "for=198.51.100.1;proto=https"), *X_FORWARDED]
    with served(interface, proxy_headers=True, forwarded_allow_ips=["10.0.0.1"]) as port:
        x_only, local = ask(port, interface, X_FORWARDED)
        assert x_only == direct(local, port)
        both, local = ask(port, interface, headers)
        assert both == direct(local, port)


@pytest.mark.parametrize("interface", INTERFACES)
def test_proxy_headers_off_changes_nothing(interface: str) -> None:
    headers = [("Forwarded", "for=198.51.100.1;proto=https"), *X_FORWARDED]
    with served(interface, forwarded_allow_ips=["*"]) as port:
        got, local = ask(port, interface, headers)
    assert got == direct(local, port)


@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize(
    ("headers", "client"),
    [
        # The client wrote 1.2.3.4 and 9.9.9.9 itself; 10.0.0.5 is a trusted proxy, which
        # appended the address that connected to it: 9.9.9.9 is the client.
        ([("X-Forwarded-For", "1.2.3.4, 9.9.9.9, 10.0.0.5")], ("9.9.9.9", 0)),
        # The same chain over two field lines, which are one list.
        ([("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-For", "9.9.9.9, 10.0.0.5")],
         ("9.9.9.9", 0)),
        ([("Forwarded", "for=1.2.3.4, for=9.9.9.9, for=10.0.0.5")], ("9.9.9.9", 0)),
        # Every hop trusted: the leftmost is the client.
        ([("X-Forwarded-For", "10.1.1.1, 10.0.0.5")], ("10.1.1.1", 0)),
    ],
    ids=["x-forwarded-for", "two-lines", "forwarded", "all-trusted"],
)  # fmt: skip
def test_client_entries_left_of_the_trusted_hops_are_ignored(
    interface: str, headers: list[tuple[str, str]], client: tuple[str, int]
) -> None:
    allow = ["127.0.0.1", "10.0.0.0/8"]
    with served(interface, proxy_headers=True, forwarded_allow_ips=allow) as port:
        got, _ = ask(port, interface, headers)
    assert got.client == client


@pytest.mark.parametrize("interface", INTERFACES)
def test_the_access_log_names_the_forwarded_client(
    interface: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI's logging setup turns propagation off; a test that ran it may share this
    # process.
    monkeypatch.setattr(logging.getLogger("rootserve"), "propagate", True)
    monkeypatch.setattr(logging.getLogger("rootserve.access"), "propagate", True)
    caplog.set_level(logging.INFO, logger="rootserve.access")
    with served(interface, proxy_headers=True, access_log=True) as port:
        ask(port, interface, [("X-Forwarded-For", "203.0.113.7")])
        # The line is written as the response completes, before the next request is read.
        ask(port, interface)
    lines = [r.getMessage() for r in caplog.records if r.name == "rootserve.access"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("203.0.113.7 - - ["), lines
    assert lines[1].startswith("127.0.0.1 - - ["), lines


def ws_connect(port: int, headers: dict[str, str]) -> ClientConnection:
    return connect(
        f"ws://127.0.0.1:{port}/ws",
        additional_headers=headers,
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    )


@pytest.mark.parametrize(
    ("allow", "scheme", "client"),
    [(["127.0.0.1"], "wss", ["203.0.113.7", 0]), (["10.0.0.1"], "ws", None)],
    ids=["trusted", "untrusted"],
)
def test_a_websocket_handshake_takes_the_forwarded_scheme(
    allow: list[str], scheme: str, client: list[Any] | None
) -> None:
    headers = {
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "shop.example",
    }
    settings = {"proxy_headers": True, "forwarded_allow_ips": allow}
    with serve(asgi_echo, **settings) as running, ws_connect(running.port, headers) as ws:
        local_port = ws.socket.getsockname()[1]
        view = json.loads(ws.recv(timeout=TIMEOUT))
    assert view["scheme"] == scheme
    if client is None:  # untrusted: the connection's own facts
        assert view["client"] == ["127.0.0.1", local_port]
        assert view["server"] == ["127.0.0.1", running.port]
    else:
        assert view["client"] == client
        assert view["server"] == ["shop.example", 443]
        assert view["host"] == ["shop.example"]


@pytest.mark.parametrize(
    ("allow", "client"),
    [(["unix"], ["203.0.113.7", 0]), (["127.0.0.1", "::1"], None)],
    ids=["unix-trusted", "unix-untrusted"],
)
def test_unix_names_a_unix_socket_peer(
    tmp_path: Path, allow: list[str], client: list[Any] | None
) -> None:
    path = tmp_path / "app.sock"
    request = request_bytes([("X-Forwarded-For", "203.0.113.7"), ("Connection", "close")])
    with served_on_unix(path, proxy_headers=True, forwarded_allow_ips=allow):
        view = unix_ask(path, request)
    assert view["client"] == client  # a unix peer has no address: None in the scope


# -- settings on the command line -------------------------------------------------------


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("10.0.0.300", ["--forwarded-allow-ips", "'10.0.0.300'", "CIDR"]),
        ("10.0.0.1/8", ["--forwarded-allow-ips", "'10.0.0.1/8'", "10.0.0.0/8"]),
        ("127.0.0.1,localhost", ["--forwarded-allow-ips", "'localhost'"]),
    ],
    ids=["bad-address", "host-bits", "a-name"],
)
def test_a_bad_forwarded_allow_ips_exits_2_with_one_line(value: str, words: list[str]) -> None:
    done = run_cli("--proxy-headers", "--forwarded-allow-ips", value, "--port", "0")
    assert done.returncode == 2, done
    line = one_error_line(done.stderr)
    for word in words:
        assert word in line, line


def test_proxy_protocol_with_tls_exits_2_with_one_line(tmp_path: Path) -> None:
    cert = issue(tmp_path)
    done = run_cli(
        "--proxy-protocol",
        "--ssl-certfile",
        str(cert.certfile),
        "--ssl-keyfile",
        str(cert.keyfile),
        "--port",
        "0",
    )
    assert done.returncode == 2, done
    line = one_error_line(done.stderr)
    assert "--proxy-protocol" in line and "--ssl-certfile" in line, line
