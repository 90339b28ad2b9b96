"""The ASGI `http` scope of one request, and the extensions it offers.

`build_scope` makes the scope the ASGI HTTP spec 2.4 describes from the exchange's request
head; the extensions are added apart: TLS (only for an https request on a TLS connection),
and on HTTP/2 the response trailers extension and the stream the request came on
(`rootserve.http2`, what --trace and the inspector show). The WebSocket cycle builds its
scope here too, with extensions of its own.

Why trailers are offered on HTTP/2 only. HTTP/2 carries them on every response; HTTP/1.1
only in a chunked body to a client that said `TE: trailers` (few do: browsers do not, and
gRPC, their main user, runs on HTTP/2 alone). Offering the extension to every HTTP/1.1
request cost a GET 600 to 1,400 instructions (a dict per request; asking for TE first, 1,650:
callgrind, benchmarks/instructions.py), which every request would pay for the rare one. An
app that sends trailers without asking still gets them to an HTTP/1.1 client that takes
them (the exchange decides, `accepts_trailers`).
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import unquote

from rootserve.protocol.events import Request
from rootserve.protocol.exchange import STREAM_EXTENSION, Exchange, stream_id
from rootserve.types import Scope

__all__ = ["ASGI_VERSION", "add_http2_extensions", "add_tls_extension", "build_scope"]

ASGI_VERSION: Final = {"version": "3.0", "spec_version": "2.4"}


# The scope's keys, in the spec's order, for build_scope to copy: a copy of a dict takes its
# key table whole (one allocation), where a literal of thirteen entries inserts each key into
# a table of its own. Callgrind, compiled build, per request: the literal cost 2,950
# instructions, the copy and its eleven stores 2,550; the source build pays about 130 more.
# The values are all overwritten per request.
_SCOPE_KEYS: Final[dict[str, Any]] = dict.fromkeys(
    (
        "type",
        "asgi",
        "http_version",
        "server",
        "client",
        "scheme",
        "method",
        "root_path",
        "path",
        "raw_path",
        "query_string",
        "headers",
        "extensions",
    )
)
_SCOPE_KEYS["type"] = "http"
_SCOPE_KEYS["asgi"] = ASGI_VERSION


def build_scope(
    request: Request,
    server: tuple[str, int] | None,
    client: tuple[str, int] | None,
    scheme: str,
    root_path: str,
    state: dict[str, Any] | None,
) -> Scope:
    """The `http` scope for one request (ASGI HTTP spec 2.4, "HTTP Connection Scope").
    `request` is a `Request` event, or an exchange (each is one, with its answer's side
    added): typed as the class, the compiled build reads its fields at fixed offsets."""
    raw_path = request.path
    # ASGI HTTP spec: `path` is percent-decoded and UTF-8 decoded. llhttp admits only
    # ASCII in the target, so the raw bytes decode as ASCII.
    path = raw_path.decode("ascii")
    if "%" in path:
        path = unquote(path)
    if root_path:
        # The scope's path is the full path, root_path included (ASGI spec 2.x).
        path = root_path + path
        raw_path = root_path.encode("utf-8") + raw_path
    scope = _SCOPE_KEYS.copy()  # (a dict, not a Scope: the compiled build sets items directly)
    scope["http_version"] = request.http_version
    scope["server"] = server
    scope["client"] = client
    scope["scheme"] = scheme
    scope["method"] = request.method
    scope["root_path"] = root_path
    scope["path"] = path
    scope["raw_path"] = raw_path
    scope["query_string"] = request.query
    scope["headers"] = request.headers
    scope["extensions"] = {}
    if state is not None:
        scope["state"] = state.copy()  # each request gets its own shallow copy
    return scope


def add_tls_extension(scope: Scope, exchange: Exchange) -> None:
    """`scope["extensions"]["tls"]` (ASGI TLS extension 0.2) for an https or wss request
    on a TLS connection; one whose scheme comes from a proxy's header, on a plain
    connection, gets none (the spec forbids it for connections that are not TLS)."""
    tls = exchange.tls
    if tls is not None:
        scope["extensions"]["tls"] = tls


def add_http2_extensions(scope: Scope, exchange: Exchange) -> None:
    """An HTTP/2 request's extensions: response trailers (ASGI HTTP Trailers extension) and
    `rootserve.http2`, the stream it came on."""
    extensions = scope["extensions"]
    extensions["http.response.trailers"] = {}
    extensions[STREAM_EXTENSION] = {"stream_id": stream_id(exchange)}
