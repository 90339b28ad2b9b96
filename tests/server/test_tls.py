"""The TLS context from the --ssl-* settings (server/tls.py), without a server: what it is
made of, each bad setting's one line, the reload that keeps the old certificate when the
new one is bad, and the RFC 4514 names the ASGI TLS extension gives."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from tests.tls_support import ServerCert, encrypted_key, issue, replace_files

from rootserve.config import Config
from rootserve.server.tls import ServerContext, check_settings, make_context, rfc4514_name


@pytest.fixture
def cert(tmp_path: Path) -> ServerCert:
    return issue(tmp_path)


def context(**settings: Any) -> ServerContext:
    made = make_context(Config(**settings))
    assert made is not None
    return made


def refused(**settings: Any) -> str:
    """The one line a bad setting gets."""
    with pytest.raises(ValueError) as caught:
        check_settings(Config(**settings))
    message = str(caught.value)
    assert "\n" not in message and "--ssl-" in message, message
    return message


# -- what the context is ------------------------------------------------------------------


def test_no_certificate_is_plain_http() -> None:
    assert make_context(Config()) is None
    # (What a server apart from the app's, the health probes, is given: the rest is moot.)
    assert make_context(Config(ssl_keyfile="key.pem", ssl_cert_reqs="required")) is None


def test_the_context_a_server_needs(cert: ServerCert) -> None:
    made = context(**cert.settings())
    assert made.minimum_version is ssl.TLSVersion.TLSv1_2
    assert made.options & ssl.OP_NO_COMPRESSION
    assert made.options & ssl.OP_NO_TICKET
    assert made.verify_mode is ssl.CERT_NONE
    assert ssl.PEM_cert_to_DER_cert(made.server_cert or "") == cert.der
    # RFC 8446 appendix B.4: TLS_AES_128_GCM_SHA256 is {0x13, 0x01}.
    assert made.cipher_ids["TLS_AES_128_GCM_SHA256"] == 0x1301


def test_certificate_and_key_in_one_file(tmp_path: Path, cert: ServerCert) -> None:
    both = tmp_path / "both.pem"
    cert.leaf.private_key_and_cert_chain_pem.write_to_path(str(both))
    assert context(ssl_certfile=str(both)).server_cert is not None


@pytest.mark.parametrize(
    ("reqs", "mode"), [("optional", ssl.CERT_OPTIONAL), ("required", ssl.CERT_REQUIRED)]
)
def test_client_certificates(tmp_path: Path, cert: ServerCert, reqs: str, mode: int) -> None:
    ca = tmp_path / "ca.pem"
    cert.ca.cert_pem.write_to_path(str(ca))
    made = context(**cert.settings(), ssl_ca_certs=str(ca), ssl_cert_reqs=reqs)
    assert made.verify_mode == mode


def test_ciphers_for_tls_1_2(cert: ServerCert) -> None:
    made = context(**cert.settings(), ssl_ciphers="ECDHE+AESGCM")
    tls12 = {c["name"] for c in made.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 and all("GCM" in name and "ECDHE" in name for name in tls12)


def test_a_password_opens_an_encrypted_key(tmp_path: Path, cert: ServerCert) -> None:
    cert.keyfile.write_bytes(encrypted_key(cert.leaf, b"s3cret"))
    made = context(**cert.settings(), ssl_keyfile_password="s3cret")
    assert made.server_cert is not None


# -- a bad setting: one line that names it and the fix -------------------------------------


def test_tls_settings_without_a_certificate() -> None:
    message = refused(ssl_keyfile="key.pem", ssl_cert_reqs="required")
    assert message.startswith("--ssl-keyfile, --ssl-cert-reqs given without --ssl-certfile")


def test_missing_certificate(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    assert refused(ssl_certfile=str(missing)) == (
        f"--ssl-certfile {missing}: No such file or directory"
    )


def test_certificate_is_a_directory(tmp_path: Path) -> None:
    assert refused(ssl_certfile=str(tmp_path)) == f"--ssl-certfile {tmp_path}: Is a directory"


def test_certificate_file_holds_no_certificate(tmp_path: Path, cert: ServerCert) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert "holds no PEM certificate" in refused(
        ssl_certfile=str(junk), ssl_keyfile=str(cert.keyfile)
    )


def test_no_key_anywhere(cert: ServerCert) -> None:
    assert refused(ssl_certfile=str(cert.certfile)) == (
        f"--ssl-certfile {cert.certfile} holds no PEM private key: give the key's file "
        "with --ssl-keyfile"
    )


def test_missing_key(tmp_path: Path, cert: ServerCert) -> None:
    missing = tmp_path / "nope.key"
    assert refused(ssl_certfile=str(cert.certfile), ssl_keyfile=str(missing)) == (
        f"--ssl-keyfile {missing}: No such file or directory"
    )


def test_key_file_holds_no_key(cert: ServerCert) -> None:
    assert refused(ssl_certfile=str(cert.certfile), ssl_keyfile=str(cert.certfile)) == (
        f"--ssl-keyfile {cert.certfile} holds no PEM private key"
    )


def test_key_of_another_certificate(tmp_path: Path, cert: ServerCert) -> None:
    other = issue(tmp_path, ca=cert.ca, name="other")
    assert refused(ssl_certfile=str(cert.certfile), ssl_keyfile=str(other.keyfile)) == (
        f"--ssl-keyfile {other.keyfile} is not the private key of the certificate in "
        f"--ssl-certfile {cert.certfile}: give the key it was issued for"
    )


def test_encrypted_key_without_password(cert: ServerCert) -> None:
    cert.keyfile.write_bytes(encrypted_key(cert.leaf, b"s3cret"))
    assert refused(**cert.settings()) == (
        f"--ssl-keyfile {cert.keyfile} is encrypted: give its password with --ssl-keyfile-password"
    )


def test_wrong_password(cert: ServerCert) -> None:
    cert.keyfile.write_bytes(encrypted_key(cert.leaf, b"s3cret"))
    assert refused(**cert.settings(), ssl_keyfile_password="guess") == (
        f"--ssl-keyfile-password does not decrypt --ssl-keyfile {cert.keyfile}"
    )


@pytest.mark.parametrize("reqs", ["optional", "required"])
def test_client_certificates_need_a_ca(cert: ServerCert, reqs: str) -> None:
    assert refused(**cert.settings(), ssl_cert_reqs=reqs).startswith(
        f"--ssl-cert-reqs {reqs} checks client certificates against --ssl-ca-certs: give"
    )


def test_missing_ca(tmp_path: Path, cert: ServerCert) -> None:
    missing = tmp_path / "ca.pem"
    assert refused(**cert.settings(), ssl_ca_certs=str(missing), ssl_cert_reqs="required") == (
        f"--ssl-ca-certs {missing}: No such file or directory"
    )


def test_ca_file_holds_no_certificate(cert: ServerCert) -> None:
    message = refused(**cert.settings(), ssl_ca_certs=str(cert.keyfile))
    assert message.startswith(f"--ssl-ca-certs {cert.keyfile} holds no PEM certificate")


def test_cipher_list_that_selects_nothing(cert: ServerCert) -> None:
    assert refused(**cert.settings(), ssl_ciphers="NOPE").startswith(
        "--ssl-ciphers 'NOPE' selects no cipher OpenSSL knows"
    )


# -- reload (SIGHUP in a single process) ---------------------------------------------------


def test_reload_serves_the_new_certificate(
    tmp_path: Path, cert: ServerCert, caplog: pytest.LogCaptureFixture
) -> None:
    made = context(**cert.settings())
    renewed = issue(tmp_path, name="renewed")
    replace_files(cert, renewed)
    with caplog.at_level(logging.INFO, logger="rootserve.error"):
        made.reload()
    assert ssl.PEM_cert_to_DER_cert(made.server_cert or "") == renewed.der
    assert caplog.messages == [
        f"TLS certificate reloaded from {cert.certfile} (key {cert.keyfile})"
    ]


def test_a_bad_reload_keeps_the_old_certificate(
    tmp_path: Path, cert: ServerCert, caplog: pytest.LogCaptureFixture
) -> None:
    made = context(**cert.settings())
    other = issue(tmp_path, name="other")
    cert.keyfile.write_bytes(other.keyfile.read_bytes())  # a renewal half done
    with caplog.at_level(logging.INFO, logger="rootserve.error"):
        made.reload()
    assert ssl.PEM_cert_to_DER_cert(made.server_cert or "") == cert.der
    (message,) = caplog.messages
    assert message.startswith(
        "TLS certificate not reloaded (the old one is still served): --ssl-keyfile"
    )
    # The live context still holds a matching pair: a client completes a handshake.
    assert handshake(made, cert.client_context())[0] == "TLSv1.3"


def handshake(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> tuple[str | None, ssl.SSLObject]:
    """A handshake in memory; the version agreed, and the server's side of it."""
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    client = client_context.wrap_bio(client_in, client_out, server_hostname="127.0.0.1")
    for _ in range(10):
        done = True
        for side, out, peer_in in (
            (client, client_out, server_in),
            (server, server_out, client_in),
        ):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                done = False
            peer_in.write(out.read())  # what one side wrote is what the other reads
        if done:
            return client.version(), server
    raise AssertionError("no handshake in 10 rounds")


# -- RFC 4514 names -------------------------------------------------------------------------


def test_rfc4514_name_of_a_client_certificate(tmp_path: Path, cert: ServerCert) -> None:
    ca = tmp_path / "ca.pem"
    cert.ca.cert_pem.write_to_path(str(ca))
    made = context(**cert.settings(), ssl_ca_certs=str(ca), ssl_cert_reqs="required")
    alice = cert.ca.issue_cert("alice@example.org", common_name="alice")
    client = cert.client_context()
    alice.configure_cert(client)
    _, server = handshake(made, client)
    subject = (server.getpeercert() or {})["subject"]
    pem = alice.cert_chain_pems[0].bytes()
    expected = x509.load_pem_x509_certificate(pem).subject.rfc4514_string()
    assert rfc4514_name(subject) == expected


def test_rfc4514_escapes_and_order() -> None:
    subject = (
        (("countryName", "NZ"),),
        (("organizationName", "Smith, Jones & Co"),),
        (("organizationalUnitName", "a+b"), ("commonName", " #lead")),
        (("commonName", "trail "),),
        (("emailAddress", 'q"uote;<>\\'),),
    )
    assert rfc4514_name(subject) == (
        '1.2.840.113549.1.9.1=q\\"uote\\;\\<\\>\\\\,CN=trail\\ ,OU=a\\+b+CN=\\ #lead,'
        "O=Smith\\, Jones & Co,C=NZ"
    )
