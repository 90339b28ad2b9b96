"""HTTP/2 from the command line: --http auto (ALPN h2 on TLS; prior knowledge and Upgrade:
h2c on plain TCP, with a body), --http h1 (the preface gets 505, as before HTTP/2 existed
here), --http h2 (HTTP/1.1 gets 505), after a PROXY header, and the --h2-* limits as the
connection applies them; a bad value is one line and exit code 2. Real clients: httpx,
curl, an ssl socket for ALPN, and raw h2 clients (h2_cli_support.py)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import h2.events
import h2.settings
import httpx
import pytest
from h2.errors import ErrorCodes
from tests.e2e.h2_cli_support import (
    PREFACE,
    TIMEOUT,
    VERSION,
    VERSION_1,
    curl,
    exchange_raw,
    h2_client,
    h2c_upgrade,
    prior_knowledge,
    rootserve,
    status_of,
)
from tests.e2e.proxy_support import v1
from tests.helpers import Peer, cli_env, run_cli
from tests.tls_support import ServerCert, issue

pytestmark = pytest.mark.timeout(120)

INTERFACES = ["asgi", "wsgi"]
BODY = bytes(range(256)) * 800  # 200 KiB: more than one read, and than a frame
# An HTTP/1.1 request that asks for h2c (RFC 7540 section 3.2), HTTP2-Settings empty.
UPGRADE_GET = (
    b"GET /u HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: \r\n\r\n"
)


def curl_speaks_http2() -> bool:
    if shutil.which("curl") is None:
        return False
    version = subprocess.run(["curl", "-V"], capture_output=True, text=True, check=True).stdout
    return "HTTP2" in version


needs_curl = pytest.mark.skipif(not curl_speaks_http2(), reason="no curl with HTTP/2 here")


def tls_flags(cert: ServerCert) -> tuple[str, ...]:
    return ("--ssl-certfile", str(cert.certfile), "--ssl-keyfile", str(cert.keyfile))


def alpn_chosen(port: int, cert: ServerCert, offered: list[str]) -> str | None:
    """The protocol the server's ALPN picks from `offered` (None: none)."""
    context = cert.client_context()
    context.set_alpn_protocols(offered)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.selected_alpn_protocol()


def tls_exchange(port: int, cert: ServerCert, data: bytes) -> bytes:
    """Send `data` over TLS (no ALPN); what the server sends until it closes."""
    context = cert.client_context()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(data)
        received = b""
        while chunk := tls.recv(65536):
            received += chunk
        return received


# -- settings ----------------------------------------------------------------------------


def test_help_lists_the_http2_settings() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # (argparse wraps lines)
    for flag in (
        "--http {auto,h1,h2}",
        "--h2-max-concurrent-streams N",
        "--h2-max-header-list-size BYTES",
        "--h2-max-header-frames N",
        "--h2-max-resets N",
        "--h2-max-pings N",
        "--h2-max-settings N",
    ):
        assert flag in text
    assert "nginx: http2_max_concurrent_streams 128" in text


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--http", "h3"], {}, ["--http", "h3"]),
        (["--h2-max-concurrent-streams", "0"], {}, ["--h2-max-concurrent-streams", "'0'"]),
        (["--h2-max-pings", "many"], {}, ["--h2-max-pings", "many"]),
        ([], {"ROOTSERVE_HTTP": "2"}, ["ROOTSERVE_HTTP", "'2'"]),
    ],
    ids=["bad-http", "zero-streams", "not-a-count", "bad-env"],
)
def test_a_bad_value_exits_2_with_one_line(
    args: list[str], env: dict[str, str], words: list[str]
) -> None:
    done = run_cli(*args, "--port", "0", env=cli_env(**env))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0]


# -- --http auto ---------------------------------------------------------------------------


@pytest.mark.parametrize("interface", INTERFACES)
def test_auto_on_plain_tcp(interface: str) -> None:
    with rootserve(interface) as served:
        # Prior knowledge (RFC 9113 section 3.3).
        with httpx.Client(http1=False, http2=True, timeout=TIMEOUT) as client:
            reply = client.post(served.url + "/a", content=BODY)
            assert reply.http_version == "HTTP/2"
            assert reply.text == f"{VERSION[interface]} POST /a {len(BODY)} 127.0.0.1"
            assert client.post(served.url + "/echo", content=BODY).content == BODY
        # HTTP/1.1 as ever.
        with httpx.Client(timeout=TIMEOUT) as http1:
            reply = http1.get(served.url + "/b")
            assert (reply.http_version, reply.text) == (
                "HTTP/1.1",
                f"{VERSION_1[interface]} GET /b 0 127.0.0.1",
            )
        # Upgrade: h2c with a body: 101, then stream 1 answers with that body.
        head, status, answer = h2c_upgrade(served.port, "/echo", BODY)
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"\r\nupgrade: h2c" in head.lower()
        assert (status, answer == BODY) == (200, True)
        head, status, answer = h2c_upgrade(served.port, "/c", b"abc")
        assert (status, answer) == (200, f"{VERSION[interface]} POST /c 3 127.0.0.1".encode())
        # An HTTP2-Settings that is no SETTINGS payload: 400, on HTTP/1.1.
        bad = UPGRADE_GET.replace(b"HTTP2-Settings: ", b"HTTP2-Settings: AAMAAA")
        assert status_of(exchange_raw(served.port, bad)) == 400


@needs_curl
@pytest.mark.parametrize("interface", INTERFACES)
def test_auto_with_curl(interface: str) -> None:
    with rootserve(interface) as served:
        version = VERSION[interface]
        out = curl("--http2-prior-knowledge", "-w", " %{http_version}", served.url + "/k")
        assert out == f"{version} GET /k 0 127.0.0.1 2"
        # `curl --http2` on an http URL sends Upgrade: h2c, here with a POST body.
        out = curl("--http2", "-d", "hello", "-w", " %{http_version}", served.url + "/u")
        assert out == f"{version} POST /u 5 127.0.0.1 2"


@pytest.mark.parametrize("interface", INTERFACES)
def test_auto_on_tls_chooses_h2_by_alpn(interface: str, tmp_path: Path) -> None:
    cert = issue(tmp_path)
    with rootserve(interface, *tls_flags(cert)) as served:
        url = f"https://127.0.0.1:{served.port}"
        assert alpn_chosen(served.port, cert, ["h2", "http/1.1"]) == "h2"
        assert alpn_chosen(served.port, cert, ["http/1.1"]) == "http/1.1"
        with httpx.Client(http2=True, verify=cert.client_context(), timeout=TIMEOUT) as client:
            reply = client.post(url + "/echo", content=BODY)
            assert (reply.http_version, reply.content == BODY) == ("HTTP/2", True)
            reply = client.get(url + "/t")
            assert reply.text == f"{VERSION[interface]} GET /t 0 127.0.0.1"
        with httpx.Client(verify=cert.client_context(), timeout=TIMEOUT) as http1:
            assert http1.get(url + "/t").http_version == "HTTP/1.1"
        # Over TLS an h2c upgrade is ignored: the request is answered on HTTP/1.1.
        closing = UPGRADE_GET.replace(b"HTTP2-Settings\r\n", b"HTTP2-Settings, close\r\n")
        answer = tls_exchange(served.port, cert, closing)
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert f"{VERSION_1[interface]} GET /u 0 127.0.0.1".encode() in answer


def test_h2c_body_is_held_to_max_body_size() -> None:
    with rootserve("asgi", "--max-body-size", "1KiB") as served:
        head, _, _ = h2c_upgrade(served.port, "/big", b"x" * 2048)
        assert status_of(head) == 413
        assert h2c_upgrade(served.port, "/small", b"x" * 1024)[1:] == (
            200,
            b"2 POST /small 1024 127.0.0.1",
        )


# -- --http h1 and --http h2 ---------------------------------------------------------------


def test_h1_answers_the_preface_505_and_ignores_h2c(tmp_path: Path) -> None:
    with rootserve("asgi", "--http", "h1") as served:
        answer = exchange_raw(served.port, PREFACE)
        assert status_of(answer) == 505
        assert answer.endswith(b"HTTP/2 is not supported on this listener\n")
        with Peer(served.port, timeout=TIMEOUT) as peer:
            peer.send(UPGRADE_GET)
            reply = peer.response()
            assert (reply.status, reply.body) == (200, b"1.1 GET /u 0 127.0.0.1")
    cert = issue(tmp_path)
    with rootserve("asgi", "--http", "h1", *tls_flags(cert)) as served:
        assert alpn_chosen(served.port, cert, ["h2", "http/1.1"]) == "http/1.1"


def test_h2_only_refuses_http11(tmp_path: Path) -> None:
    with rootserve("asgi", "--http", "h2") as served:
        assert prior_knowledge(served.port, "/p") == (200, b"2 GET /p 0 127.0.0.1")
        get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        for sent in (get + b"GET / HTTP/1.1\r\n", get * 3, get + b"GET / HTTP/1.1 BAD\r\n\r\n"):
            answer = exchange_raw(served.port, sent)
            assert status_of(answer) == 505
            assert answer.count(b"HTTP/1.1 ") == 1  # one answer, then the connection closed
        assert b"HTTP/2 only" in answer
        assert status_of(h2c_upgrade(served.port, "/u", b"abc")[0]) == 505
    cert = issue(tmp_path)
    with rootserve("asgi", "--http", "h2", *tls_flags(cert)) as served:
        assert alpn_chosen(served.port, cert, ["h2", "http/1.1"]) == "h2"
        assert alpn_chosen(served.port, cert, ["http/1.1"]) is None
        answer = tls_exchange(served.port, cert, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(answer) == 505
        with httpx.Client(http2=True, verify=cert.client_context(), timeout=TIMEOUT) as client:
            reply = client.get(f"https://127.0.0.1:{served.port}/s")
            assert (reply.http_version, reply.text) == ("HTTP/2", "2 GET /s 0 127.0.0.1")


# -- behind a proxy, and the limits ------------------------------------------------------


@pytest.mark.parametrize("interface", INTERFACES)
def test_prior_knowledge_after_a_proxy_header(interface: str) -> None:
    header = v1("198.51.100.22", "203.0.113.9", 35646, 80)
    with rootserve(interface, "--proxy-protocol") as served:
        status, body = prior_knowledge(served.port, "/pp", before=header)
        assert (status, body) == (200, f"{VERSION[interface]} GET /pp 0 198.51.100.22".encode())


def test_the_limits_are_the_settings() -> None:
    flags = ("--h2-max-concurrent-streams", "7", "--h2-max-pings", "2")
    with rootserve("asgi", *flags) as served:
        conn = h2_client()
        conn.initiate_connection()
        with socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT) as sock:
            sock.sendall(conn.data_to_send())
            events: list[h2.events.Event] = []
            while not any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events):
                data = sock.recv(65536)
                assert data, "closed before the server's SETTINGS"
                events += conn.receive_data(data)
            changed = next(e for e in events if isinstance(e, h2.events.RemoteSettingsChanged))
            streams = changed.changed_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS]
            assert streams.new_value == 7
            for n in range(3):  # one PING more than --h2-max-pings
                conn.ping(b"%08d" % n)
            sock.sendall(conn.data_to_send())
            ended = []
            while not ended:
                data = sock.recv(65536)
                assert data, "closed without a GOAWAY"
                ended = [
                    e
                    for e in conn.receive_data(data)
                    if isinstance(e, h2.events.ConnectionTerminated)
                ]
        assert ended[0].error_code == ErrorCodes.ENHANCE_YOUR_CALM
        # The worker goes on serving other connections.
        assert prior_knowledge(served.port, "/after") == (200, b"2 GET /after 0 127.0.0.1")
