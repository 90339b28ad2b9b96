"""The HTTP/2 wiring of a server (ServerState.from_config, tls.make_context): what each
--http value, --metrics-bind and --proxy-protocol set for the one connection class; the TLS
context refuses renegotiation (RFC 9113 section 9.2.1)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tests.tls_support import issue

from rootserve.config import Config
from rootserve.protocol.forwarded import TrustedPeers
from rootserve.protocol.http2 import H2Limits
from rootserve.server.connection import Connection
from rootserve.server.state import ServerState
from rootserve.server.tls import make_context


def made(**settings: Any) -> ServerState:
    runner: Any = SimpleNamespace(attach=print, start=print)  # (never called here)
    loop = asyncio.new_event_loop()
    try:
        return ServerState.from_config(
            Config(access_log=False, **settings), runner=runner, loop=loop
        )
    finally:
        loop.close()


def test_each_http_value_sets_its_choices() -> None:
    h1, auto, h2 = made(http="h1"), made(http="auto"), made(http="h2")
    assert h1.h2 is None and not h1.h2_only
    assert auto.h2 is not None and not auto.h2_only
    assert h2.h2 is not None and h2.h2_only
    assert made().h2 == auto.h2  # auto is the default


def test_the_limits_are_the_settings() -> None:
    limits = made(h2_max_concurrent_streams=9, h2_max_resets=5).h2
    assert limits is not None
    assert (limits.max_concurrent_streams, limits.max_resets) == (9, 5)
    assert limits == H2Limits.from_config(Config(h2_max_concurrent_streams=9, h2_max_resets=5))


def test_proxy_protocol_trusts_the_allowed_peers_only_when_on() -> None:
    assert made().proxy_peers is None
    peers = made(proxy_protocol=True, forwarded_allow_ips=["10.0.0.0/8"]).proxy_peers
    assert isinstance(peers, TrustedPeers)
    assert peers.trusts(("10.1.2.3", 5)) and not peers.trusts(("192.0.2.1", 5))


@pytest.mark.parametrize("http", ["h1", "auto", "h2"])
@pytest.mark.parametrize("metrics", [False, True])
def test_every_setting_makes_one_connection_class(http: str, metrics: bool) -> None:
    """One class whatever the settings (mypyc compiles it; a compiled class cannot be
    combined with others at start): each choice is read from the state."""
    state = made(http=http, metrics_bind="127.0.0.1:0" if metrics else "")
    conn = Connection(state)
    assert type(conn) is Connection
    assert conn._metered is metrics and conn._h1_refused is (http == "h2")


def test_h2_header_list_size_defaults_to_what_http11_takes() -> None:
    assert H2Limits.from_config(Config()).max_header_list_size == 16 * 1024 + 32 * 100
    assert H2Limits.from_config(Config(h2_max_header_list_size=4096)).max_header_list_size == 4096


def test_tls_refuses_renegotiation(tmp_path: Path) -> None:
    cert = issue(tmp_path)
    for http in ("auto", "h1", "h2"):
        context = make_context(Config(http=http, **cert.settings()))
        assert context is not None
        assert context.options & ssl.OP_NO_RENEGOTIATION
