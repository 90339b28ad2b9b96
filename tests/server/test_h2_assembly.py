"""The HTTP/2 wiring of a server (assembly.connection_class, tls.make_context): the class
each --http value makes, with and without --metrics-bind and --proxy-protocol; HTTP/2 on
costs the HTTP/1.1 read path nothing (it stays Connection's own method); the TLS context
refuses renegotiation (RFC 9113 section 9.2.1)."""

from __future__ import annotations

import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tests.tls_support import issue

from rootserve.config import Config
from rootserve.protocol.http2 import H2Limits
from rootserve.server.assembly import MeteredConnection, connection_class
from rootserve.server.connection import Connection
from rootserve.server.h2_detect import HTTP2Connection, HTTP2OnlyConnection
from rootserve.server.proxied import ProxyProtocolConnection
from rootserve.server.tls import make_context


def made(metered: bool = False, **settings: Any) -> type[Connection]:
    state: Any = SimpleNamespace(metrics=SimpleNamespace(enabled=metered))
    return connection_class(Config(**settings), state)


def test_each_http_value_makes_its_class() -> None:
    assert made(http="h1") is Connection
    assert made(http="h1", metered=True) is MeteredConnection
    auto = made(http="auto")
    assert issubclass(auto, HTTP2Connection) and not issubclass(auto, HTTP2OnlyConnection)
    assert issubclass(made(http="h2"), HTTP2OnlyConnection)
    proxied = made(http="auto", proxy_protocol=True, metered=True)
    assert issubclass(proxied, ProxyProtocolConnection)
    assert issubclass(proxied, HTTP2Connection) and issubclass(proxied, MeteredConnection)


def test_the_limits_are_the_settings() -> None:
    auto = made(http="auto", h2_max_concurrent_streams=9, h2_max_resets=5)
    assert issubclass(auto, HTTP2Connection)
    limits = auto.h2_limits
    assert (limits.max_concurrent_streams, limits.max_resets) == (9, 5)
    assert limits == H2Limits.from_config(Config(h2_max_concurrent_streams=9, h2_max_resets=5))


@pytest.mark.parametrize("metered", [False, True])
def test_the_http11_read_path_is_the_base_class_own(metered: bool) -> None:
    """uvloop caches the bound data_received: an override would cost every HTTP/1.1
    request a Python frame; HTTP/2 is found on cold paths instead (h2_detect.py)."""
    base = MeteredConnection if metered else Connection
    for http in ("auto", "h2"):
        assert made(http=http, metered=metered).data_received is base.data_received


def test_h2_header_list_size_defaults_to_what_http11_takes() -> None:
    assert H2Limits.from_config(Config()).max_header_list_size == 16 * 1024 + 32 * 100
    assert H2Limits.from_config(Config(h2_max_header_list_size=4096)).max_header_list_size == 4096


def test_tls_refuses_renegotiation(tmp_path: Path) -> None:
    cert = issue(tmp_path)
    for http in ("auto", "h1", "h2"):
        context = make_context(Config(http=http, **cert.settings()))
        assert context is not None
        assert context.options & ssl.OP_NO_RENEGOTIATION
