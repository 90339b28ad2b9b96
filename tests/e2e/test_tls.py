"""HTTPS and WSS end to end: real TLS clients (httpx, websockets, the ssl module) against
servers on 127.0.0.1, with certificates from a trustme CA.

What is checked: ASGI and WSGI apps answer over TLS and see https (wss) and the ASGI TLS
extension; client certificates (required: refused without one, the app sees it with one);
what must fail fails at the handshake, quietly (a plain-HTTP client, TLS 1.1, a silent
client past --timeout-header) while the server goes on serving; a renewed certificate is
served after HUP, by a single process (which re-reads it) and by a supervisor's workers (a
rolling restart), and a bad renewal leaves the old one served.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import signal
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography import x509
from tests.e2e.workers_support import APP, still_running, supervisor
from tests.helpers import READY_TIMEOUT, run_cli, serve
from tests.tls_support import (
    SERVER_NAME,
    TIMEOUT,
    ServerCert,
    encrypted_key,
    issue,
    replace_files,
)
from tests.tls_support import served_certificate as served
from tests.wsgi.support import serve_wsgi, validated
from websockets.sync.client import connect

from rootserve.config import Config
from rootserve.server.worker import Server
from rootserve.supervisor.sockets import bind_all
from rootserve.types import Receive, Scope, Send

LOOPS = ["asyncio", "uvloop"]
BODY = bytes(range(256)) * 4096  # 1 MiB: more than one TLS record, more than one read
# IANA numbers of the suites OpenSSL picks (RFC 8446 appendix B.4; RFC 5289; RFC 7905).
IANA_SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
}
EXTENSION_KEYS = {
    "server_cert",
    "client_cert_chain",
    "client_cert_name",
    "client_cert_error",
    "tls_version",
    "cipher_suite",
}


@pytest.fixture
def cert(tmp_path: Path) -> ServerCert:
    return issue(tmp_path)


@pytest.fixture
def log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    """Every record, rootserve's at DEBUG (the CLI's logging setup, if a test in this
    process ran it, stops their propagation)."""
    monkeypatch.setattr(logging.getLogger("rootserve"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="rootserve")
    caplog.set_level(logging.DEBUG, logger="asyncio")
    return caplog


def quiet(log: pytest.LogCaptureFixture) -> None:
    """No warning, no error, no traceback, from any logger: what a failed handshake
    says is a debug line, below the default --log-level (info)."""
    loud = [r for r in log.records if r.exc_info or r.levelno >= logging.WARNING]
    assert not loud, [f"{r.name} {r.levelname}: {r.getMessage()}" for r in loud]


def handshake_failures(log: pytest.LogCaptureFixture) -> list[str]:
    return [m for m in log.messages if m.startswith("TLS handshake failed: ")]


# -- the apps ---------------------------------------------------------------------------------


async def scope_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers (HTTP) or says (WebSocket) what its scope holds of TLS, and the body's hash."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    seen = {"scheme": scope["scheme"], "tls": scope["extensions"].get("tls")}
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(seen)})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    seen["body"] = [len(body), hashlib.sha256(body).hexdigest()]
    answer = json.dumps(seen).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": answer})


def environ_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    seen = {
        "url_scheme": environ["wsgi.url_scheme"],
        "HTTPS": environ.get("HTTPS"),
        "body": [len(body), hashlib.sha256(body).hexdigest()],
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


def digest(data: bytes) -> list[Any]:
    return [len(data), hashlib.sha256(data).hexdigest()]


# -- clients ----------------------------------------------------------------------------------


def get_json(port: int, context: ssl.SSLContext) -> tuple[dict[str, Any], str]:
    """GET / over a TLS connection of our own; the answer, and the cipher suite agreed."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        cipher = tls.cipher()
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert cipher is not None
    return json.loads(body), cipher[0]


def refused_at_handshake(port: int, context: ssl.SSLContext) -> BaseException | bytes:
    """What a client gets that completes (or thinks it completes) the handshake and asks
    for a page: the error, or the bytes it read (nothing, the server having closed)."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls,
        ):
            # TLS 1.3: the client's side of the handshake ends before the server checks
            # the client's certificate; the refusal comes as an alert on the first read.
            tls.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            return tls.recv(65536)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
        return exc


def client_with_certificate(ca: trustme.CA, cert: ServerCert) -> tuple[ssl.SSLContext, bytes]:
    """A client that trusts the server, with a certificate from `ca`; that certificate."""
    context = cert.client_context()
    leaf = ca.issue_cert("alice@example.org", common_name="alice")
    leaf.configure_cert(context)
    return context, leaf.cert_chain_pems[0].bytes()


def ca_settings(tmp_path: Path, cert: ServerCert, reqs: str) -> dict[str, str]:
    ca = tmp_path / "clients-ca.pem"
    cert.ca.cert_pem.write_to_path(str(ca))
    return {**cert.settings(), "ssl_ca_certs": str(ca), "ssl_cert_reqs": reqs}


# -- HTTPS for ASGI and WSGI apps -----------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_asgi_app_over_https(cert: ServerCert, log: pytest.LogCaptureFixture, loop: str) -> None:
    with (
        serve(scope_app, loop=loop, **cert.settings()) as running,
        httpx.Client(verify=cert.client_context(), timeout=TIMEOUT) as client,
    ):
        url = f"https://127.0.0.1:{running.port}/"
        got = client.get(url)
        assert got.status_code == 200
        assert got.json()["scheme"] == "https"
        posted = client.post(url, content=BODY)  # same connection: keep-alive over TLS
        assert posted.json()["body"] == digest(BODY)
    tls = posted.json()["tls"]
    assert set(tls) == EXTENSION_KEYS
    assert ssl.PEM_cert_to_DER_cert(tls["server_cert"]) == cert.der
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    quiet(log)


def test_tls_version_and_cipher_suite(cert: ServerCert) -> None:
    with serve(scope_app, **cert.settings()) as running:
        seen, suite = get_json(running.port, cert.client_context())
        assert seen["tls"]["tls_version"] == 0x0304
        assert seen["tls"]["cipher_suite"] == IANA_SUITES[suite]
        context = cert.client_context()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        seen, suite = get_json(running.port, context)
        assert seen["tls"]["tls_version"] == 0x0303
        assert seen["tls"]["cipher_suite"] == IANA_SUITES[suite]


def test_plain_http_has_no_tls_extension() -> None:
    with serve(scope_app) as running, httpx.Client(timeout=TIMEOUT) as client:
        seen = client.get(f"http://127.0.0.1:{running.port}/").json()
    assert seen["scheme"] == "http"
    assert seen["tls"] is None


def test_wsgi_app_over_https(cert: ServerCert, log: pytest.LogCaptureFixture) -> None:
    with (
        serve_wsgi(validated(environ_app), **cert.settings()) as running,
        httpx.Client(verify=cert.client_context(), timeout=TIMEOUT) as client,
    ):
        url = f"https://127.0.0.1:{running.port}/"
        assert client.get(url).json() == {"url_scheme": "https", "HTTPS": "on", "body": digest(b"")}
        assert client.post(url, content=BODY).json()["body"] == digest(BODY)
    quiet(log)


@pytest.mark.parametrize("loop", LOOPS)
def test_file_response_over_tls(tmp_path: Path, cert: ServerCert, loop: str) -> None:
    """wsgi.file_wrapper: asyncio's sendfile cannot go through TLS and falls back to
    reads and writes; uvloop's app thread reads the file. Either way the keep-alive
    connection goes on after it. (Not under the validator: its wrapper would hide the
    file wrapper from the server.)"""
    path = tmp_path / "big.bin"
    path.write_bytes(BODY * 3 + b"tail")

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](path.open("rb"))  # type: ignore[no-any-return]

    with (
        serve_wsgi(app, loop=loop, **cert.settings()) as running,
        httpx.Client(verify=cert.client_context(), timeout=TIMEOUT) as client,
    ):
        answers = [client.get(f"https://127.0.0.1:{running.port}/") for _ in range(2)]
    for answer in answers:
        assert digest(answer.content) == digest(path.read_bytes())


@pytest.mark.parametrize("loop", LOOPS)
def test_wss(cert: ServerCert, log: pytest.LogCaptureFixture, loop: str) -> None:
    with serve(scope_app, loop=loop, **cert.settings()) as running:
        uri = f"wss://127.0.0.1:{running.port}/chat"
        with connect(
            uri, ssl=cert.client_context(), open_timeout=TIMEOUT, close_timeout=TIMEOUT
        ) as ws:
            seen = json.loads(ws.recv(timeout=TIMEOUT))
    assert seen["scheme"] == "wss"
    assert set(seen["tls"]) == EXTENSION_KEYS
    assert seen["tls"]["tls_version"] == 0x0304
    quiet(log)


def test_unix_socket_serves_tls(tmp_path: Path, cert: ServerCert) -> None:
    path = tmp_path / "tls.sock"
    config = Config(access_log=False, **cert.settings())
    sockets = bind_all([f"unix:{path}"], 16)
    server = Server(config, scope_app, sockets)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert server.started.wait(READY_TIMEOUT)
        assert server.addresses == [f"unix:{path} (TLS)"]
        with socket.socket(socket.AF_UNIX) as raw:
            raw.settimeout(TIMEOUT)
            raw.connect(str(path))
            with cert.client_context().wrap_socket(raw, server_hostname=SERVER_NAME) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := tls.recv(65536):
                    data += chunk
        assert data.startswith(b"HTTP/1.1 200 ")
        assert json.loads(data.partition(b"\r\n\r\n")[2])["scheme"] == "https"
    finally:
        server.request_stop()
        thread.join(READY_TIMEOUT)
        for sock in sockets:
            sock.close()


def test_encrypted_key_with_its_password(cert: ServerCert) -> None:
    cert.keyfile.write_bytes(encrypted_key(cert.leaf, b"s3cret"))
    with (
        serve(scope_app, ssl_keyfile_password="s3cret", **cert.settings()) as running,
        httpx.Client(verify=cert.client_context(), timeout=TIMEOUT) as client,
    ):
        assert client.get(f"https://127.0.0.1:{running.port}/").json()["scheme"] == "https"


# -- client certificates ----------------------------------------------------------------------


def test_client_certificate_required(
    tmp_path: Path, cert: ServerCert, log: pytest.LogCaptureFixture
) -> None:
    with serve(scope_app, **ca_settings(tmp_path, cert, "required")) as running:
        without = refused_at_handshake(running.port, cert.client_context())
        assert not (isinstance(without, bytes) and without), without
        assert handshake_failures(log) == [
            "TLS handshake failed: PEER_DID_NOT_RETURN_A_CERTIFICATE (no client certificate "
            "(--ssl-cert-reqs required))"
        ]
        context, alice = client_with_certificate(cert.ca, cert)
        seen, _ = get_json(running.port, context)
    tls = seen["tls"]
    (pem,) = tls["client_cert_chain"]
    assert ssl.PEM_cert_to_DER_cert(pem) == ssl.PEM_cert_to_DER_cert(alice.decode())
    assert tls["client_cert_name"] == x509.load_pem_x509_certificate(alice).subject.rfc4514_string()
    assert tls["client_cert_name"].startswith("CN=alice,")
    assert tls["client_cert_error"] is None
    quiet(log)


def test_client_certificate_from_another_ca_is_refused(
    tmp_path: Path, cert: ServerCert, log: pytest.LogCaptureFixture
) -> None:
    stranger = issue(tmp_path, name="stranger")  # its own CA, which the server does not trust
    with serve(scope_app, **ca_settings(tmp_path, cert, "optional")) as running:
        context, _ = client_with_certificate(stranger.ca, cert)
        answer = refused_at_handshake(running.port, context)
        assert not (isinstance(answer, bytes) and answer), answer
        # Optional: a client without a certificate is served, and the app sees none.
        seen, _ = get_json(running.port, cert.client_context())
    assert seen["tls"]["client_cert_chain"] == []
    assert seen["tls"]["client_cert_name"] is None
    (failure,) = handshake_failures(log)
    assert failure.startswith("TLS handshake failed: CERTIFICATE_VERIFY_FAILED")
    quiet(log)


# -- what fails at the handshake: quietly, and the server goes on ---------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_plain_http_on_the_tls_port(
    cert: ServerCert, log: pytest.LogCaptureFixture, loop: str
) -> None:
    with serve(scope_app, loop=loop, **cert.settings()) as running:
        with socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):
                assert raw.recv(65536) == b""  # closed, no answer
        seen, _ = get_json(running.port, cert.client_context())
        assert seen["scheme"] == "https"
    assert handshake_failures(log) == [
        "TLS handshake failed: HTTP_REQUEST (plain HTTP sent to the HTTPS port)"
    ]
    quiet(log)


def test_tls_1_1_is_refused(cert: ServerCert, log: pytest.LogCaptureFixture) -> None:
    context = cert.client_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is, rightly
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that this client does offer TLS 1.1
    with serve(scope_app, **cert.settings()) as running:
        with pytest.raises(ssl.SSLError):
            get_json(running.port, context)
        assert get_json(running.port, cert.client_context())[0]["scheme"] == "https"
    (failure,) = handshake_failures(log)
    assert failure.startswith("TLS handshake failed: UNSUPPORTED_PROTOCOL")
    quiet(log)


@pytest.mark.parametrize("loop", LOOPS)
def test_silent_client_is_closed_after_the_header_timeout(
    cert: ServerCert, log: pytest.LogCaptureFixture, loop: str
) -> None:
    with (
        serve(scope_app, loop=loop, timeout_header=0.5, **cert.settings()) as running,
        socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT) as raw,
    ):
        started = time.monotonic()
        assert raw.recv(65536) == b""  # no ClientHello: closed at the handshake timeout
        assert time.monotonic() - started < TIMEOUT / 2
    quiet(log)


def test_bad_setting_stops_the_cli(tmp_path: Path) -> None:
    done = run_cli("--ssl-certfile", str(tmp_path / "missing.pem"))
    assert done.returncode == 2
    assert (
        done.stderr
        == f"error: --ssl-certfile {tmp_path / 'missing.pem'}: No such file or directory\n"
    )


# -- a renewed certificate and HUP -----------------------------------------------------------


def https_port(running: Any) -> int:
    return int(running.wait_for(r"Listening on https://127\.0\.0\.1:(\d+)")[0][1])


def test_hup_reloads_the_certificate_of_a_single_process(tmp_path: Path) -> None:
    first = issue(tmp_path)
    renewed = issue(tmp_path, name="renewed")
    settings = ["--ssl-certfile", str(first.certfile), "--ssl-keyfile", str(first.keyfile)]
    with supervisor(APP, *settings) as running:
        port = https_port(running)
        assert served(port) == first.der
        replace_files(first, renewed)
        running.proc.send_signal(signal.SIGHUP)
        running.wait_for(rf"TLS certificate reloaded from {first.certfile} \(key ")
        assert served(port) == renewed.der
        # A renewal gone wrong (a key that is not the certificate's): the one served stays.
        first.keyfile.write_bytes(issue(tmp_path, name="third").keyfile.read_bytes())
        running.proc.send_signal(signal.SIGHUP)
        running.wait_for(r"TLS certificate not reloaded \(the old one is still served\): ")
        assert served(port) == renewed.der
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # plain HTTP: closed quietly
            with contextlib.suppress(ConnectionResetError):
                raw.recv(65536)
        assert served(port) == renewed.der
        assert running.proc.poll() is None
    assert running.proc.returncode == 0
    assert not [line for line in running.lines if "Traceback" in line or "WARNING" in line]


def test_hup_rolls_workers_onto_the_renewed_certificate(tmp_path: Path) -> None:
    first = issue(tmp_path)
    renewed = issue(tmp_path, name="renewed")
    settings = ["--ssl-certfile", str(first.certfile), "--ssl-keyfile", str(first.keyfile)]
    with supervisor(APP, "-w", "1", *settings) as running:
        (old,) = running.worker_pids(1)
        port = https_port(running)
        assert served(port) == first.der
        replace_files(first, renewed)
        running.proc.send_signal(signal.SIGHUP)
        running.wait_for(r"Rolling restart done")
        # The old worker accepts until its drain closes its listener: wait for it to go.
        assert not still_running({old})
        assert served(port) == renewed.der
        # A bad renewal: the new worker cannot load it, the old one goes on serving.
        first.keyfile.write_text("not a key\n")
        running.proc.send_signal(signal.SIGHUP)
        running.wait_for(r"holds no PEM private key")
        running.wait_for(r"Rolling restart stopped")
        assert served(port) == renewed.der
