"""TLS for the listeners: the server's SSL context, its certificate reload, and what each
TLS connection tells the app (the ASGI TLS extension).

How this works. `make_context(config)` turns the --ssl-* settings into one `ServerContext`, an
`ssl.SSLContext` that also carries what connections read from it: the certificate it serves
(PEM) and the IANA number of each cipher suite it may pick. Every listener, TCP or unix,
gets it through `create_server(ssl=...)`, with --timeout-header as the handshake timeout;
the event loop's TLS layer (asyncio's or uvloop's) runs the handshake and calls the
connection only once the handshake succeeded, so the HTTP side never sees a failed one.
Those the loops close without a word (not even at debug level, unless the loop runs in
debug mode), so the context's SSL objects (`_SSLObject`) log one debug line for each:
a plain-HTTP client on the HTTPS port costs a closed connection, never a traceback.

Choices, each a default of the servers that do TLS well:
- TLS 1.2 at least (RFC 8996 deprecates 1.0 and 1.1); ciphers are the ssl module's secure
  default unless --ssl-ciphers says otherwise (TLS 1.3 suites are OpenSSL's either way).
- ALPN (RFC 7301) offers what --http serves (ALPN_PROTOCOLS): `h2` then `http/1.1`, or
  one of them alone. Renegotiation is off (RFC 9113 section 9.2.1 asks it of HTTP/2 over
  TLS 1.2; TLS 1.3 has none).
- No compression (CRIME), and no TLS 1.2 session tickets: a ticket is sealed with a key
  the process keeps for its whole life, so anyone who later reads that key can open every
  session recorded meanwhile (no forward secrecy; Mozilla's server guide turns them off
  for this). Resumption still works through OpenSSL's session cache, in each process.
- Client certificates (--ssl-cert-reqs optional|required) are checked against
  --ssl-ca-certs; one that does not verify fails the handshake, so `client_cert_error` is
  always None.

A bad setting (a missing file, a key that is not the certificate's, a wrong password, a
cipher list that selects nothing) is a ValueError with one line naming the setting and the
fix: cli.py calls `check_settings` before anything starts, and `ServerContext.reload`
(SIGHUP in a single process) tries the new files on a fresh context first, so a bad
renewal leaves the old certificate served.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from rootserve.config import Config

__all__ = [
    "ALPN_PROTOCOLS",
    "ConnectionTLS",
    "ServerContext",
    "check_settings",
    "make_context",
    "rfc4514_name",
]

logger = logging.getLogger("rootserve.error")

# Application protocols offered in ALPN (RFC 7301), most preferred first, by --http.
ALPN_PROTOCOLS: Final = {"auto": ("h2", "http/1.1"), "h1": ("http/1.1",), "h2": ("h2",)}
MINIMUM_VERSION: Final = ssl.TLSVersion.TLSv1_2
CERT_REQS: Final = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
# The version numbers of the TLS specifications (the ASGI TLS extension's `tls_version`),
# by the names OpenSSL gives them.
TLS_VERSIONS: Final = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

_CERTIFICATE: Final = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)
_PRIVATE_KEY: Final = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
# PKCS#8 ("ENCRYPTED PRIVATE KEY") and the older OpenSSL form ("Proc-Type: 4,ENCRYPTED").
_ENCRYPTED: Final = re.compile(r"-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED")

# Why handshakes fail, in words, by OpenSSL's reason code (the debug line of a failure).
_HANDSHAKE_HINTS: Final = {
    "HTTP_REQUEST": "plain HTTP sent to the HTTPS port",
    "UNSUPPORTED_PROTOCOL": "the client offers no TLS version from 1.2 up",
    "WRONG_VERSION_NUMBER": "not a TLS client, or a TLS version older than 1.2",
    "NO_SHARED_CIPHER": "no cipher suite in common (--ssl-ciphers)",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no client certificate (--ssl-cert-reqs required)",
    "CERTIFICATE_VERIFY_FAILED": "the client certificate does not verify (--ssl-ca-certs)",
}


class _SSLObject(ssl.SSLObject):
    """The SSL object of each connection (`SSLContext.sslobject_class`): the event loops
    run the handshake through `do_handshake`, and close a connection whose handshake fails
    without logging anything; this says why, in one debug line."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # the handshake goes on when more bytes come
        except ssl.SSLError as exc:
            reason = exc.reason or exc.__class__.__name__
            hint = _HANDSHAKE_HINTS.get(reason)
            logger.debug("TLS handshake failed: %s%s", reason, f" ({hint})" if hint else "")
            raise


class ServerContext(ssl.SSLContext):
    """The server's TLS context, with what its connections read from it; `reload` re-reads
    the certificate and key into it (new handshakes serve them)."""

    config: Config
    server_cert: str | None  # the certificate served (PEM), for the ASGI TLS extension
    cipher_ids: dict[str, int]  # OpenSSL's cipher suite names -> IANA numbers

    def reload(self) -> None:
        """Re-read --ssl-certfile and --ssl-keyfile; on any failure the certificate in use
        stays, and one line says why."""
        config = self.config
        try:
            # The files are tried on a fresh context first: loading a certificate into a
            # live context replaces it at once, and a key that then fails to load (or to
            # match) would leave it serving a certificate without its key.
            trial = make_context(config)
            assert trial is not None  # (the certificate is set: this context exists)
            self.load_cert_chain(
                config.ssl_certfile, config.ssl_keyfile or None, config.ssl_keyfile_password
            )
        except (ValueError, OSError) as exc:
            logger.error("TLS certificate not reloaded (the old one is still served): %s", exc)
            return
        self.server_cert = trial.server_cert
        logger.info("TLS certificate reloaded from %s", _files(config))


def make_context(config: Config, alpn: Sequence[str] | None = None) -> ServerContext | None:
    """The context every listener serves TLS with, or None without --ssl-certfile (plain
    HTTP, whatever the other --ssl-* say). Raises ValueError, one line naming the setting
    and the fix, for a bad one. `alpn`: the protocols offered, if not --http's."""
    if not config.ssl_certfile:
        return None
    context = ServerContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_TICKET | ssl.OP_NO_RENEGOTIATION
    context.sslobject_class = _SSLObject
    context.config = config
    context.server_cert = _load_chain(context, config)
    reqs = config.ssl_cert_reqs
    if config.ssl_ca_certs:
        _load_ca(context, config.ssl_ca_certs)
    elif reqs != "none":
        raise ValueError(
            f"--ssl-cert-reqs {reqs} checks client certificates against --ssl-ca-certs: "
            "give the CA file (PEM) that signs them"
        )
    context.verify_mode = CERT_REQS[reqs]
    if config.ssl_ciphers:
        try:
            context.set_ciphers(config.ssl_ciphers)
        except ssl.SSLError:
            raise ValueError(
                f"--ssl-ciphers {config.ssl_ciphers!r} selects no cipher OpenSSL knows "
                f"(see `openssl ciphers -v {config.ssl_ciphers!r}`; empty keeps the default)"
            ) from None
    context.set_alpn_protocols(list(ALPN_PROTOCOLS[config.http] if alpn is None else alpn))
    context.cipher_ids = {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}
    return context


def check_settings(config: Config) -> None:
    """The --ssl-* settings, checked once before anything starts (cli.py): ValueError,
    one line, for a bad one, or for TLS settings given without a certificate."""
    if not config.ssl_certfile:
        _check_no_tls_settings(config)
    make_context(config)


def _check_no_tls_settings(config: Config) -> None:
    given = [
        flag
        for flag, value in (
            ("--ssl-keyfile", config.ssl_keyfile),
            ("--ssl-keyfile-password", config.ssl_keyfile_password),
            ("--ssl-ca-certs", config.ssl_ca_certs),
            ("--ssl-ciphers", config.ssl_ciphers),
            ("--ssl-cert-reqs", "" if config.ssl_cert_reqs == "none" else "set"),
        )
        if value
    ]
    if given:
        raise ValueError(
            f"{', '.join(given)} given without --ssl-certfile: add the certificate "
            "(PEM) to serve HTTPS, or drop the TLS settings to serve plain HTTP"
        )


def _read(flag: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="latin-1")
    except OSError as exc:
        raise ValueError(f"{flag} {path}: {exc.strerror or exc}") from None


def _load_chain(context: ssl.SSLContext, config: Config) -> str:
    """Load the certificate chain and key; the served certificate as PEM."""
    certfile, keyfile = config.ssl_certfile, config.ssl_keyfile
    certs = _read("--ssl-certfile", certfile)
    leaf = _CERTIFICATE.search(certs)
    if leaf is None:
        raise ValueError(
            f"--ssl-certfile {certfile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )
    key_flag, key_path = ("--ssl-keyfile", keyfile) if keyfile else ("--ssl-certfile", certfile)
    key = _read(key_flag, key_path) if keyfile else certs
    if _PRIVATE_KEY.search(key) is None:
        where = "" if keyfile else ": give the key's file with --ssl-keyfile"
        raise ValueError(f"{key_flag} {key_path} holds no PEM private key{where}")
    encrypted = _ENCRYPTED.search(key) is not None
    password = config.ssl_keyfile_password
    if encrypted and not password:
        raise ValueError(
            f"{key_flag} {key_path} is encrypted: give its password with --ssl-keyfile-password"
        )
    try:
        # A password is always given, empty or not, so that OpenSSL never asks for one on
        # the terminal (a server in the background would wait for it forever).
        context.load_cert_chain(certfile, keyfile or None, password)
    except OSError as exc:  # ssl.SSLError is one; a file removed since it was read, too
        raise ValueError(_chain_error(config, key_flag, key_path, encrypted, exc)) from None
    return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(leaf.group()))


def _chain_error(
    config: Config, key_flag: str, key_path: str, encrypted: bool, exc: OSError
) -> str:
    reason = getattr(exc, "reason", None)
    if reason == "KEY_VALUES_MISMATCH":
        return (
            f"{key_flag} {key_path} is not the private key of the certificate in "
            f"--ssl-certfile {config.ssl_certfile}: give the key it was issued for"
        )
    if encrypted and isinstance(exc, ssl.SSLError):
        return f"--ssl-keyfile-password does not decrypt {key_flag} {key_path}"
    if not isinstance(exc, ssl.SSLError):
        return f"{key_flag} {key_path}: {exc.strerror or exc}"
    return (
        f"--ssl-certfile {config.ssl_certfile} with {key_flag} {key_path}: OpenSSL cannot "
        f"load them ({reason or exc}); give a PEM certificate chain and its PEM key"
    )


def _load_ca(context: ssl.SSLContext, path: str) -> None:
    _read("--ssl-ca-certs", path)  # a missing or unreadable file, said as such
    try:
        context.load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError):
        raise ValueError(
            f"--ssl-ca-certs {path} holds no PEM certificate: give the CA certificates "
            "(-----BEGIN CERTIFICATE-----) that sign the client certificates"
        ) from None


def _files(config: Config) -> str:
    if config.ssl_keyfile:
        return f"{config.ssl_certfile} (key {config.ssl_keyfile})"
    return config.ssl_certfile


# -- what the app is told: the ASGI TLS extension --------------------------------------------

# RFC 4514 section 2.3: the types of its section 3 table by their short names, any other
# by its dotted OID. The ssl module gives OpenSSL's long names (the OID itself for a type
# OpenSSL has no name for): these are the ones seen in certificates; a rarer type OpenSSL
# names keeps OpenSSL's name, as `openssl x509 -nameopt RFC2253` writes it.
_RFC4514_TYPES: Final = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
    "emailAddress": "1.2.840.113549.1.9.1",
    "surname": "2.5.4.4",
    "serialNumber": "2.5.4.5",
    "title": "2.5.4.12",
    "postalCode": "2.5.4.17",
    "givenName": "2.5.4.42",
    "initials": "2.5.4.43",
    "generationQualifier": "2.5.4.44",
    "dnQualifier": "2.5.4.46",
    "pseudonym": "2.5.4.65",
}
_RFC4514_ESCAPE: Final = re.compile(r'["+,;<>\\]')


def rfc4514_name(subject: Any) -> str:
    """A distinguished name as RFC 4514 writes it, from `getpeercert()["subject"]` (a
    tuple of RDNs, each a tuple of (type, value) pairs, the most general first)."""
    rdns = []
    for rdn in reversed(subject):  # RFC 4514 section 2.1: the last RDN first
        parts = []
        for kind, value in rdn:
            text = _RFC4514_ESCAPE.sub(lambda m: "\\" + m.group(), str(value))
            text = text.replace("\0", "\\00")
            if text.startswith((" ", "#")):  # section 2.4
                text = "\\" + text
            if text.endswith(" "):
                text = text[:-1] + "\\ "
            parts.append(f"{_RFC4514_TYPES.get(kind, kind)}={text}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


class ConnectionTLS:
    """One TLS connection's facts for the ASGI TLS extension. Made as the connection opens
    (after its handshake); read from the SSL object only when a request first asks."""

    __slots__ = ("_extension", "_server_cert", "_ssl_object")

    def __init__(self, ssl_object: ssl.SSLObject) -> None:
        self._ssl_object = ssl_object
        context = ssl_object.context
        # Taken now: a reload after this handshake does not change what it served.
        self._server_cert = context.server_cert if isinstance(context, ServerContext) else None
        self._extension: dict[str, Any] | None = None

    def extension(self) -> dict[str, Any]:
        """`scope["extensions"]["tls"]`: a new dict each time (an app may change its
        scope), its values computed once per connection."""
        if self._extension is None:
            self._extension = self._read()
        return self._extension.copy()

    def _read(self) -> dict[str, Any]:
        sslobj = self._ssl_object
        context = sslobj.context
        cipher = sslobj.cipher()
        ids = context.cipher_ids if isinstance(context, ServerContext) else {}
        leaf = sslobj.getpeercert(binary_form=True)
        chain: tuple[str, ...] = ()
        name = None
        if leaf:
            # Python 3.13 gives the chain the client sent; before, only its certificate.
            unverified = getattr(sslobj, "get_unverified_chain", None)
            ders: list[bytes] = list(unverified()) if unverified is not None else []
            if not ders or ders[0] != leaf:
                ders.insert(0, leaf)
            chain = tuple(ssl.DER_cert_to_PEM_cert(der) for der in ders)
            subject = (sslobj.getpeercert() or {}).get("subject", ())
            name = rfc4514_name(subject)
        return {
            "server_cert": self._server_cert,
            "client_cert_chain": chain,
            "client_cert_name": name,
            # A certificate that fails to verify fails the handshake: there is no connection
            # to report the error on.
            "client_cert_error": None,
            "tls_version": TLS_VERSIONS.get(sslobj.version() or ""),
            "cipher_suite": ids.get(cipher[0]) if cipher else None,
        }
