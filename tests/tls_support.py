"""Certificates for the TLS tests, made by trustme (a real CA, in memory), written to files
as an operator would have them, and the client side: contexts that trust the CA, and a
handshake that reports which certificate the server sent."""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

SERVER_NAME = "127.0.0.1"
TIMEOUT = 10.0  # seconds a client socket waits


@dataclass
class ServerCert:
    """A server certificate and its key, written to `certfile` and `keyfile`."""

    ca: trustme.CA
    leaf: trustme.LeafCert
    certfile: Path
    keyfile: Path

    @property
    def der(self) -> bytes:
        """The certificate itself (DER): what a handshake with this server shows."""
        return ssl.PEM_cert_to_DER_cert(self.leaf.cert_chain_pems[0].bytes().decode())

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate's CA."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def settings(self) -> dict[str, str]:
        return {"ssl_certfile": str(self.certfile), "ssl_keyfile": str(self.keyfile)}


def issue(directory: Path, *, ca: trustme.CA | None = None, name: str = "server") -> ServerCert:
    """A new certificate for 127.0.0.1, written as NAME.pem and NAME.key in `directory`."""
    ca = ca or trustme.CA()
    leaf = ca.issue_cert(SERVER_NAME, "localhost")
    certfile, keyfile = directory / f"{name}.pem", directory / f"{name}.key"
    leaf.cert_chain_pems[0].write_to_path(str(certfile))
    leaf.private_key_pem.write_to_path(str(keyfile))
    return ServerCert(ca, leaf, certfile, keyfile)


def replace_files(target: ServerCert, source: ServerCert) -> None:
    """Put `source`'s certificate and key in `target`'s files, each replaced at once (as
    certbot and cert-manager do: a reader sees the old file or the new one)."""
    for src, dst in ((source.certfile, target.certfile), (source.keyfile, target.keyfile)):
        staged = dst.with_suffix(".new")
        staged.write_bytes(src.read_bytes())
        os.replace(staged, dst)


def encrypted_key(leaf: trustme.LeafCert, password: bytes) -> bytes:
    """`leaf`'s private key as an encrypted PKCS#8 PEM."""
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )


def served_certificate(port: int) -> bytes:
    """The certificate (DER) a new TLS connection to `port` is served; any certificate is
    accepted here, the caller compares it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der
