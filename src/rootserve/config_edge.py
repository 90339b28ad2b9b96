"""The settings of what meets the outside: WebSocket, HTTP/2, TLS, proxies, the access log's shape,
metrics and health probes, static files; and the learner's tools (--strict, --trace).
`Config` (config.py) inherits them; they are declared here only to keep each file
readable; everything config.py's docstring says holds for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from rootserve.setting import parse_count, parse_seconds, parse_size, setting
from rootserve.units import MIB, SECONDS

__all__ = ["COMMON_LOG_FORMAT", "H2_FLOOD_WINDOW", "EdgeSettings", "parse_h2_limit"]

# The access log's default line: the NCSA common log format, as Apache and nginx write it.
COMMON_LOG_FORMAT: Final = '%(h)s - - [%(t)s] "%(r)s" %(s)s %(b)s'

# The HTTP/2 flood limits (--h2-max-resets, --h2-max-pings, --h2-max-settings) count the
# frames of this many seconds.
H2_FLOOD_WINDOW: Final = 10 * SECONDS
_H2_WINDOW: Final = f"{H2_FLOOD_WINDOW:g} seconds"
_SETTING_MAX: Final = 2**31 - 1  # RFC 9113 section 6.5.2: the values live in 32 bits


def parse_h2_limit(text: str) -> int:
    """A count an HTTP/2 limit allows: 1 or more (0 would refuse everything)."""
    value = parse_count(text)
    if not 1 <= value <= _SETTING_MAX:
        raise ValueError(f"{text!r} is not a count from 1 to {_SETTING_MAX}")
    return value


@dataclass(frozen=True)
class EdgeSettings:
    # -- WebSocket (ASGI apps)
    ws: str = setting(
        "auto",
        "WebSocket (RFC 6455) for ASGI apps: `auto` switches a valid handshake to a WebSocket "
        "session (ASGI `websocket` scope); `off` answers it as a plain HTTP request, as it "
        "always is for a WSGI app.",
        choices=("auto", "off"),
        group="websocket",
    )
    ws_per_message_deflate: bool = setting(
        True,
        "Offer WebSocket permessage-deflate compression (RFC 7692) to clients that ask.",
        group="websocket",
    )
    ws_max_size: int = setting(
        16 * MIB,
        "Largest WebSocket message in bytes (after decompression); larger closes the "
        "connection with 1009 (0: no limit).",
        parse=parse_size,
        metavar="BYTES",
        group="websocket",
    )
    ws_max_queue: int = setting(
        32,
        "WebSocket messages received and not yet taken by the app before reading pauses "
        "(0: no limit).",
        parse=parse_count,
        metavar="N",
        group="websocket",
    )
    ws_ping_interval: float = setting(
        20 * SECONDS,
        "Send a WebSocket ping every this many seconds (0: never).",
        parse=parse_seconds,
        metavar="SECONDS",
        group="websocket",
    )
    ws_ping_timeout: float = setting(
        20 * SECONDS,
        "Fail a WebSocket (close code 1011) when the pong to a ping does not come back "
        "within this many seconds (0: no limit).",
        parse=parse_seconds,
        metavar="SECONDS",
        group="websocket",
    )
    # -- HTTP/2 (protocol/http2.py; each limit's default beside nginx's)
    http: str = setting(
        "auto",
        "HTTP versions served: `auto` serves HTTP/1.1 and HTTP/2 (on TLS, ALPN offers h2 "
        "then http/1.1; on plain TCP, h2c by prior knowledge or by `Upgrade: h2c`); `h1` "
        "serves HTTP/1.1 only (the HTTP/2 preface gets 505); `h2` serves HTTP/2 only (ALPN "
        "offers h2 alone; on plain TCP prior knowledge only, and an HTTP/1.1 request gets "
        "505). An idle HTTP/2 connection is closed after --timeout-keep-alive (nginx: "
        "keepalive_timeout 75s), with GOAWAY.",
        choices=("auto", "h1", "h2"),
        group="http2",
        elsewhere="granian `--http`",
    )
    h2_max_concurrent_streams: int = setting(
        128,
        "Most streams (requests) open at once on one HTTP/2 connection; one more is "
        "refused with REFUSED_STREAM, which tells the client to retry it (nginx: "
        "http2_max_concurrent_streams 128).",
        parse=parse_h2_limit,
        metavar="N",
        group="http2",
    )
    h2_max_header_list_size: int = setting(
        0,
        "Most bytes of one HTTP/2 request's header fields, counting 32 more per field (RFC "
        "9113 section 6.5.2); more gets 431. 0: --max-header-size plus 32 bytes for each of "
        "--max-header-count fields (19,584 bytes with their defaults), so that what "
        "HTTP/1.1 takes HTTP/2 takes (nginx: large_client_header_buffers 4 8k, 32 KiB).",
        parse=parse_size,
        metavar="BYTES",
        group="http2",
    )
    h2_max_header_frames: int = setting(
        16,
        "Most HEADERS and CONTINUATION frames in one HTTP/2 header block; more ends the "
        "connection with GOAWAY ENHANCE_YOUR_CALM (the CONTINUATION flood; nginx counts "
        "no frames, its header buffers bound the bytes).",
        parse=parse_h2_limit,
        metavar="N",
        group="http2",
    )
    h2_max_resets: int = setting(
        200,
        f"Most HTTP/2 streams reset in {_H2_WINDOW}, by the client (RST_STREAM) or refused "
        "by the server; more ends the connection with GOAWAY ENHANCE_YOUR_CALM (the rapid "
        "reset, CVE-2023-44487; nginx 1.25.3 caps the new streams of each event-loop pass "
        "instead).",
        parse=parse_h2_limit,
        metavar="N",
        group="http2",
    )
    h2_stall_timeout: float = setting(
        60 * SECONDS,
        "Most seconds an HTTP/2 answer may wait on a flow-control window the client keeps "
        "shut with nothing sent (a zero-window stall); then its stream is reset (CANCEL) and "
        "the app is told the client left (0: wait as long as it takes; nginx: send_timeout "
        "60s, between two writes).",
        parse=parse_seconds,
        metavar="SECONDS",
        group="http2",
    )
    h2_max_pings: int = setting(
        100,
        f"Most HTTP/2 PING frames in {_H2_WINDOW}; more ends the connection with GOAWAY "
        "ENHANCE_YOUR_CALM (the ping flood, CVE-2019-9512; nginx counts none).",
        parse=parse_h2_limit,
        metavar="N",
        group="http2",
    )
    h2_max_settings: int = setting(
        100,
        f"Most HTTP/2 SETTINGS frames in {_H2_WINDOW}; more ends the connection with GOAWAY "
        "ENHANCE_YOUR_CALM (the settings flood, CVE-2019-9515; nginx counts none).",
        parse=parse_h2_limit,
        metavar="N",
        group="http2",
    )
    # -- TLS
    ssl_certfile: str = setting(
        "",
        "Serve HTTPS (and WSS) with this certificate chain (PEM). A HUP re-reads it, and "
        "the key, so a renewed certificate is served without a restart.",
        metavar="FILE",
        group="tls",
        elsewhere="uvicorn `--ssl-certfile`, gunicorn `--certfile`",
    )
    ssl_keyfile: str = setting(
        "",
        "The certificate's private key (PEM); empty when it is in --ssl-certfile.",
        metavar="FILE",
        group="tls",
        elsewhere="uvicorn `--ssl-keyfile`, gunicorn `--keyfile`",
    )
    ssl_keyfile_password: str = setting(
        "",
        "The password of an encrypted --ssl-keyfile.",
        metavar="TEXT",
        group="tls",
        elsewhere="uvicorn `--ssl-keyfile-password`",
    )
    ssl_ca_certs: str = setting(
        "",
        "CA certificates (PEM) that client certificates are checked against.",
        metavar="FILE",
        group="tls",
        elsewhere="uvicorn `--ssl-ca-certs`, gunicorn `--ca-certs`",
    )
    ssl_cert_reqs: str = setting(
        "none",
        "Client certificates: `none` asks for none, `optional` checks one when sent, "
        "`required` refuses a client without a valid one.",
        choices=("none", "optional", "required"),
        group="tls",
        elsewhere="uvicorn `--ssl-cert-reqs` (a number there), gunicorn `--cert-reqs`",
    )
    ssl_ciphers: str = setting(
        "",
        "OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's); empty keeps the "
        "ssl module's secure default. TLS 1.2 is the oldest version accepted.",
        metavar="CIPHERS",
        group="tls",
        elsewhere="uvicorn `--ssl-ciphers`, gunicorn `--ciphers`",
    )
    # -- proxies
    proxy_headers: bool = setting(
        False,
        "Take the client's address, scheme, host, port and path prefix from `Forwarded` "
        "(RFC 7239) or `X-Forwarded-For/-Proto/-Host/-Port/-Prefix`, from peers in "
        "--forwarded-allow-ips only, walking the chain from the right to the first "
        "untrusted hop.",
        group="proxy",
        elsewhere="uvicorn `--proxy-headers` (on by default there)",
    )
    forwarded_allow_ips: list[str] = setting(
        ["127.0.0.1", "::1"],
        "Peers trusted to set the proxy headers and the PROXY protocol: addresses, CIDR "
        "networks (`10.0.0.0/8`), `unix` for a unix-socket peer, or `*`; repeatable or "
        "comma-separated.",
        metavar="ADDRESS",
        group="proxy",
        elsewhere="uvicorn and gunicorn `--forwarded-allow-ips`",
    )
    proxy_protocol: bool = setting(
        False,
        "Expect the PROXY protocol (v1 or v2, as HAProxy and AWS NLB send it) before each "
        "connection's first byte, from --forwarded-allow-ips peers; a connection from "
        "another peer, or one that never sends it within --timeout-header, is closed.",
        group="proxy",
        elsewhere="granian `--proxy-protocol`, hypercorn `--proxy-protocol`",
    )
    # -- the access log's shape (whether there is one: --access-log)
    access_log_format: str = setting(
        COMMON_LOG_FORMAT,
        "The access log line, with placeholders: %(h)s client address, %(t)s time, %(r)s "
        "request line, %(m)s method, %(U)s path, %(q)s query, %(H)s protocol, %(s)s status, "
        "%(b)s body bytes (- for none), %(B)s body bytes, %(D)s duration in microseconds, "
        "%(L)s duration in seconds, %(p)s worker pid, %(i)s request id, "
        "%({header}i)s a request header, %({header}o)s a response header.",
        metavar="FORMAT",
        group="logging",
        elsewhere="gunicorn `--access-logformat`",
    )
    log_format: str = setting(
        "text",
        "`json`: every log line is one JSON object; an access line carries time, request "
        "id (X-Request-ID, or a new one), trace id (W3C traceparent), method, path, "
        "status, bytes, duration, client and worker pid.",
        choices=("text", "json"),
        group="logging",
    )
    access_log_exclude: list[str] = setting(
        [],
        "A request path left out of the access log (health probes); repeatable. A pattern "
        "ending in `*` matches every path it begins.",
        metavar="PATH",
        group="logging",
    )
    log_config: str = setting(
        "",
        "A logging configuration (logging.config.dictConfig) as a .json or .toml file, "
        "applied instead of rootserve's own: loggers `rootserve.error` and "
        "`rootserve.access`.",
        metavar="FILE",
        group="logging",
        elsewhere="uvicorn `--log-config`, gunicorn `--log-config-dict`",
    )
    # -- metrics and health
    metrics_bind: str = setting(
        "",
        "Serve Prometheus metrics at /metrics, and the health probes /healthz (alive) and "
        "/readyz (started and not draining), on this HOST:PORT, apart from the app's port "
        "(empty: off, at no cost).",
        metavar="ADDRESS",
        group="metrics",
    )
    # -- static files
    static: list[str] = setting(
        [],
        "Serve the files of DIR under the URL prefix, before the app: `/static=./public`; "
        "repeatable. ETag, Last-Modified, 304, single ranges (206) and HEAD; no path "
        "leaves DIR.",
        metavar="PREFIX=DIR",
        group="static",
        elsewhere="whitenoise, nginx `location` + `alias`",
    )
    # -- learning and debugging
    strict: bool = setting(
        False,
        "Check everything the app does against its contract (ASGI 3 or PEP 3333) and answer "
        "a broken rule with a 500 that names it, and one log line: for development.",
        group="learn",
    )
    trace: bool = setting(
        False,
        "Write each conversation between the server and the app to stderr, one block per "
        "request, WebSocket session or lifespan: the scope and every receive() and send() "
        "message (ASGI); the environ, start_response, body reads, chunks and close() "
        "(WSGI); with times since the app was called. For learning and debugging: it costs "
        "time on every request.",
        group="learn",
    )
    trace_format: str = setting(
        "text",
        "How --trace writes a block: `text` (coloured on a terminal, unless NO_COLOR is "
        "set) or `json`, one object per block for tools (implies --trace).",
        choices=("text", "json"),
        group="learn",
    )
    trace_path: list[str] = setting(
        [],
        "Trace only requests and WebSocket sessions whose path matches GLOB (`/api/*`; "
        "fnmatch, case-sensitive); repeatable; implies --trace.",
        metavar="GLOB",
        group="learn",
    )
