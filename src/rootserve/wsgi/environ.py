"""The PEP 3333 environ for one request, built from the request head (`Head`)."""

from __future__ import annotations

import sys
from typing import IO, Any, Final
from urllib.parse import unquote_to_bytes

from rootserve.protocol.events import Head
from rootserve.types import WSGIEnviron

__all__ = ["base_environ", "build_environ"]

# Header names already turned into environ keys (`user-agent` -> `HTTP_USER_AGENT`).
_KEYS: dict[bytes, str | None] = {}
_KEYS_MAX: Final = 1024
# Bytes tested as integers: `37 in raw_path` is a memchr, while `b"%" in raw_path` first
# tries the bytes as an integer and builds (and drops) a TypeError.
_PERCENT: Final = ord("%")


def _key(name: bytes) -> str | None:
    key = _KEYS.get(name)
    if key is None and name not in _KEYS:
        if b"_" in name:
            # `X_Forwarded_For` and `X-Forwarded-For` would both become
            # HTTP_X_FORWARDED_FOR: a client could spoof what a proxy sets. Dropped, as
            # nginx and gunicorn do (PEP 3333 leaves the mapping to the server).
            key = None
        elif name == b"content-type":
            key = "CONTENT_TYPE"
        elif name == b"content-length":
            key = "CONTENT_LENGTH"
        else:
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_KEYS) < _KEYS_MAX:
            _KEYS[name] = key
    return key


def base_environ(
    *, root_path: str, scheme: str, multiprocess: bool, file_wrapper: Any
) -> WSGIEnviron:
    """The keys that are the same for every request of a worker."""
    return {
        "SCRIPT_NAME": root_path,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": file_wrapper,
    }


def build_environ(
    base: WSGIEnviron,
    request: Head,
    server: tuple[str, int] | None,
    client: tuple[str, int] | None,
    wsgi_input: IO[bytes] | Any,
    scheme: str = "http",
) -> WSGIEnviron:
    """PEP 3333 "environ Variables": every required key, native strings decoded as latin-1
    ("Unicode Issues"). `base` holds the keys every request shares (`base_environ`), with
    `wsgi.url_scheme` http; an https request's `scheme` replaces it, and sets HTTPS to
    "on" as CGI servers do (what apps and frameworks test besides the scheme)."""
    raw_path = request.path
    # PATH_INFO holds the percent-decoded bytes as latin-1 (PEP 3333 "Unicode Issues").
    if _PERCENT in raw_path:
        path = unquote_to_bytes(raw_path).decode("latin-1")
    else:
        path = raw_path.decode("latin-1")
    environ = base.copy()
    environ["REQUEST_METHOD"] = request.method
    environ["PATH_INFO"] = path
    environ["QUERY_STRING"] = request.query.decode("latin-1")
    environ["SERVER_PROTOCOL"] = "HTTP/" + request.http_version
    environ["RAW_URI"] = request.target.decode("latin-1")
    environ["wsgi.input"] = wsgi_input
    if scheme == "https":
        environ["wsgi.url_scheme"] = scheme
        environ["HTTPS"] = "on"
    if server is not None:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = server[0], str(server[1])
    else:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = "localhost", "0"
    if client is not None:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
    else:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = "", ""
    for name, value in request.headers:
        key = _KEYS.get(name) or _key(name)
        if key is None:
            continue
        text = value.decode("latin-1")
        if key in environ:
            # PEP 3333 follows CGI (RFC 3875 section 4.1.18): repeated fields are joined.
            environ[key] += "," + text
        else:
            environ[key] = text
    return environ
