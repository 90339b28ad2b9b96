"""The proxy headers: which peers are trusted, the walk from the right, and the values read.

The proxies in these tables live in 10.0.0.0/8 (and `unix`); the request comes from PEER,
one of them, unless a test says otherwise. Documentation addresses (192.0.2.0/24,
198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are the clients.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rootserve.protocol.forwarded import Forwarded, Peer, TrustedPeers, resolve

TRUSTED = TrustedPeers.from_settings(["10.0.0.0/8", "unix"])
PEER = ("10.0.0.1", 41000)
HeaderList = list[tuple[bytes, bytes]]


def forwarded(*lines: str) -> HeaderList:
    return [(b"forwarded", line.encode("latin-1")) for line in lines]


def xff(**headers: str | list[str]) -> HeaderList:
    """X-Forwarded-* headers: for_="a, b" or for_=["line 1", "line 2"]."""
    out: HeaderList = []
    for key, value in headers.items():
        name = b"x-forwarded-" + key.rstrip("_").encode()
        for line in [value] if isinstance(value, str) else value:
            out.append((name, line.encode("latin-1")))
    return out


# -- --forwarded-allow-ips


@pytest.mark.parametrize(
    ("items", "peer", "trusted"),
    [
        (["127.0.0.1"], ("127.0.0.1", 1), True),
        (["127.0.0.1"], ("127.0.0.2", 1), False),
        (["127.0.0.1, 10.0.0.0/8"], ("10.200.0.7", 1), True),
        (["127.0.0.1 ,  10.0.0.0/8 ,"], ("10.200.0.7", 1), True),
        (["192.168.0.0/16", "10.0.0.0/8"], ("172.16.0.1", 1), False),
        (["10.0.0.0/8"], ("11.0.0.1", 1), False),
        (["::1"], ("::1", 1), True),
        (["[::1]"], ("::1", 1), True),
        (["2001:db8::/32"], ("2001:db8:1::5", 1), True),
        (["2001:db8::/32"], ("2001:db9::5", 1), False),
        (["fe80::/10"], ("fe80::1%eth0", 1), True),
        # A dual-stack socket reports an IPv4 peer as an IPv4-mapped IPv6 address.
        (["10.0.0.0/8"], ("::ffff:10.1.2.3", 1), True),
        (["10.1.2.3"], ("::ffff:10.1.2.3", 1), True),
        (["::ffff:10.1.2.3"], ("10.1.2.3", 1), True),
        (["::ffff:0:0/96"], ("::ffff:10.1.2.3", 1), True),
        (["10.0.0.0/8"], ("::ffff:11.1.2.3", 1), False),
        # IPv4 and IPv6 never match each other otherwise.
        (["::/0"], ("10.0.0.1", 1), False),
        (["0.0.0.0/0"], ("::1", 1), False),
        # Unix-socket peers: None or a path.
        (["unix"], None, True),
        (["unix"], "/run/app.sock", True),
        (["unix"], "", True),
        (["UNIX"], None, True),
        (["127.0.0.1"], None, False),
        (["127.0.0.1"], "/run/app.sock", False),
        (["unix"], ("127.0.0.1", 1), False),
        # A bare address in text is an IP peer, not a path.
        (["unix", "127.0.0.1"], "127.0.0.1", True),
        (["unix"], "127.0.0.1", False),
        (["*"], ("203.0.113.9", 1), True),
        (["*"], None, True),
        (["*"], "/run/app.sock", True),
        ([], ("127.0.0.1", 1), False),
        ([""], None, False),
    ],
)
def test_trusted_peers(items: list[str], peer: Peer, trusted: bool) -> None:
    assert TrustedPeers.from_settings(items).trusts(peer) is trusted


@pytest.mark.parametrize(
    ("entry", "fix"),
    [
        ("localhost", "a CIDR network (10.0.0.0/8), unix or *"),
        ("10.0.0.1/8", "write it as 10.0.0.0/8"),
        ("2001:db8::1/32", "write it as 2001:db8::/32"),
        ("10.0.0.0/33", "write it as 10.0.0.0/8 or fd00::/8"),
        ("10.0.0.256", "a CIDR network"),
        ("010.0.0.1", "a CIDR network"),
        ("unix:/run/x.sock", "a CIDR network"),
        ("**", "unix or *"),
        ("[::1", "unix or *"),
    ],
)
def test_bad_entries_name_themselves_and_the_fix(entry: str, fix: str) -> None:
    with pytest.raises(ValueError) as info:
        TrustedPeers.from_settings(["127.0.0.1", f"::1,{entry}"])
    message = str(info.value)
    assert message.startswith("--forwarded-allow-ips: ")
    assert repr(entry) in message
    assert fix in message
    assert "\n" not in message


# -- only trusted peers are heard


@pytest.mark.parametrize(
    "peer", [("203.0.113.9", 5000), ("::ffff:203.0.113.9", 5000), ("2001:db8::9", 5000)]
)
def test_an_untrusted_peer_is_not_heard(peer: Peer) -> None:
    headers = xff(for_="192.0.2.1", proto="https") + forwarded("for=192.0.2.1;proto=https")
    assert resolve(headers, peer, TRUSTED) is None
    assert resolve(headers, PEER, TRUSTED) is not None


def test_a_unix_peer_is_heard_when_unix_is_trusted() -> None:
    headers = xff(for_="192.0.2.1")
    expected = Forwarded(("192.0.2.1", 0), None, None, None, None)
    assert resolve(headers, None, TRUSTED) == expected
    assert resolve(headers, "/run/rootserve.sock", TRUSTED) == expected
    assert resolve(headers, None, TrustedPeers.from_settings(["10.0.0.0/8"])) is None


def test_no_proxy_headers_is_none() -> None:
    assert resolve([(b"host", b"example.com"), (b"x-forwarded", b"1")], PEER, TRUSTED) is None


# -- X-Forwarded-For: the walk from the right


@pytest.mark.parametrize(
    ("chain", "client"),
    [
        ("192.0.2.1", ("192.0.2.1", 0)),
        ("192.0.2.1, 10.0.0.2", ("192.0.2.1", 0)),
        ("192.0.2.1,10.0.0.2,10.0.0.3", ("192.0.2.1", 0)),
        # Spoofing: the client wrote the left part; the first untrusted hop from the right
        # is the address the proxies saw.
        ("6.6.6.6, 192.0.2.1", ("192.0.2.1", 0)),
        ("10.9.9.9, 192.0.2.1, 10.0.0.2", ("192.0.2.1", 0)),
        ("127.0.0.1, 198.51.100.7, 10.0.0.3", ("198.51.100.7", 0)),
        ("garbage, 192.0.2.1", ("192.0.2.1", 0)),
        # Every hop trusted: the leftmost is the client.
        ("10.0.0.5, 10.0.0.2", ("10.0.0.5", 0)),
        # Ports and IPv6, as proxies write them.
        ("192.0.2.1:4711", ("192.0.2.1", 4711)),
        ("2001:db8::1", ("2001:db8::1", 0)),
        ("[2001:db8::1]", ("2001:db8::1", 0)),
        ("[2001:db8::1]:4711, 10.0.0.2", ("2001:db8::1", 4711)),
        ("2001:DB8:0::1", ("2001:db8::1", 0)),
        ("::ffff:10.0.0.7, 192.0.2.1", ("192.0.2.1", 0)),
        # The hop where the walk stops names nobody: the client is unknown.
        ("192.0.2.1, unknown, 10.0.0.2", None),
        ("192.0.2.1, 192.0.2.300", None),
        ("192.0.2.1, 192.0.2.1:0", None),
        ("192.0.2.1, 192.0.2.1:65536", None),
        ("192.0.2.1, 192.0.2.1:", None),
        ("192.0.2.1, fe80::1%eth0", None),
        ("192.0.2.1, [192.0.2.1]", None),
        ("192.0.2.1, [2001:db8::1", None),
        ("192.0.2.1, 010.0.0.1", None),
        ("192.0.2.1, 192.0.2.1 80", None),
        ("192.0.2.1, _hidden", None),
        # Empty list elements are no hops (RFC 9110 section 5.6.1).
        (" , 192.0.2.1 ,, 10.0.0.2,", ("192.0.2.1", 0)),
    ],
)
def test_x_forwarded_for_walk(chain: str, client: tuple[str, int] | None) -> None:
    result = resolve(xff(for_=chain, proto="https"), PEER, TRUSTED)
    assert result is not None
    assert result.client == client


def test_x_forwarded_for_lines_are_one_list() -> None:
    headers = xff(for_=["6.6.6.6, 192.0.2.1", "10.0.0.2"])
    assert resolve(headers, PEER, TRUSTED) == Forwarded(("192.0.2.1", 0), None, None, None, None)
    headers = xff(for_=["192.0.2.1", "198.51.100.2, 10.0.0.2"])
    assert resolve(headers, PEER, TRUSTED) == Forwarded(("198.51.100.2", 0), None, None, None, None)


def test_star_trusts_every_hop() -> None:
    everything = TrustedPeers.from_settings(["*"])
    result = resolve(
        xff(for_="192.0.2.1, 198.51.100.2, 203.0.113.3"), ("203.0.113.9", 1), everything
    )
    assert result is not None and result.client == ("192.0.2.1", 0)
    result = resolve(xff(for_="unknown, 198.51.100.2", proto="https"), None, everything)
    assert result == Forwarded(None, "https", None, None, None)


# -- X-Forwarded-Proto/-Host/-Port/-Prefix: the client's position, or the rightmost value


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # Alone, without X-Forwarded-For.
        (xff(proto="https"), Forwarded(None, "https", None, None, None)),
        (xff(host="example.com"), Forwarded(None, None, "example.com", None, None)),
        (xff(port="8443"), Forwarded(None, None, None, 8443, None)),
        (xff(prefix="/api"), Forwarded(None, None, None, None, "/api")),
        # As long as X-Forwarded-For: the value at the client's position.
        (
            xff(for_="6.6.6.6, 192.0.2.1, 10.0.0.2", proto="http, https, http"),
            Forwarded(("192.0.2.1", 0), "https", None, None, None),
        ),
        (
            xff(for_="192.0.2.1, 10.0.0.2", host="a.example, b.example"),
            Forwarded(("192.0.2.1", 0), None, "a.example", None, None),
        ),
        (
            xff(for_="10.0.0.3, 10.0.0.2", port="8001, 8002"),
            Forwarded(("10.0.0.3", 0), None, None, 8001, None),
        ),
        # Of another length: the rightmost value, the nearest proxy's.
        (
            xff(for_="6.6.6.6, 192.0.2.1, 10.0.0.2", proto="http, https"),
            Forwarded(("192.0.2.1", 0), "https", None, None, None),
        ),
        (
            xff(for_="6.6.6.6, 192.0.2.1", proto="https", host="evil.example, example.com"),
            Forwarded(("192.0.2.1", 0), "https", "example.com", None, None),
        ),
        # Lines join into one list.
        (
            xff(for_="192.0.2.1, 10.0.0.2", proto=["https", "http"]),
            Forwarded(("192.0.2.1", 0), "https", None, None, None),
        ),
        # The host's port stands unless X-Forwarded-Port says otherwise.
        (xff(host="example.com:8443"), Forwarded(None, None, "example.com:8443", 8443, None)),
        (
            xff(host="example.com:8443", port="443"),
            Forwarded(None, None, "example.com:8443", 443, None),
        ),
        # An invalid value at the chosen position is left out, the rest stays.
        (
            xff(for_="192.0.2.1", proto="ftp", host="example.com"),
            Forwarded(("192.0.2.1", 0), None, "example.com", None, None),
        ),
        (xff(proto="ftp", port="0", host="a b", prefix="x"), None),
    ],
)
def test_x_forwarded_values(headers: HeaderList, expected: Forwarded | None) -> None:
    assert resolve(headers, PEER, TRUSTED) == expected


@pytest.mark.parametrize(
    ("value", "scheme"),
    [
        ("http", "http"),
        ("https", "https"),
        ("HTTPS", "https"),
        ("Http", "http"),
        ("ws", "http"),
        ("wss", "https"),
        ("WSS", "https"),
        ("ftp", None),
        ("https:", None),
        ("https://", None),
        ("http s", None),
        ("", None),
        ("\x00https", None),
    ],
)
def test_schemes(value: str, scheme: str | None) -> None:
    result = resolve(xff(proto=value, host="h"), PEER, TRUSTED)
    assert result is not None and result.scheme == scheme
    result = resolve(forwarded(f'proto="{value}";host=h'), PEER, TRUSTED)
    if value.isprintable():
        assert result is not None and result.scheme == scheme
    else:  # a control character breaks a quoted-string: the line is unreadable
        assert result is None


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [
        ("example.com", "example.com", None),
        ("Example.COM", "Example.COM", None),
        ("example.com:8080", "example.com:8080", 8080),
        ("192.0.2.1:80", "192.0.2.1:80", 80),
        ("[2001:db8::1]", "[2001:db8::1]", None),
        ("[2001:db8::1]:8443", "[2001:db8::1]:8443", 8443),
        ("xn--bcher-kva.example", "xn--bcher-kva.example", None),
        ("example.com:65535", "example.com:65535", 65535),
        ("example.com:0", None, None),
        ("example.com:65536", None, None),
        ("example.com:", None, None),
        ("example.com:80:80", None, None),
        (":80", None, None),
        ("exa mple.com", None, None),
        ("example.com\x01", None, None),
        ("example.com\x7f", None, None),
        ("example.com/path", None, None),
        ("user@example.com", None, None),
        ("[2001:db8::zz]", None, None),
        ("[fe80::1%25eth0]", None, None),
        ("2001:db8::1", None, None),
        ("[2001:db8::1", None, None),
        ("exämple.com", None, None),
    ],
)
def test_hosts(value: str, host: str | None, port: int | None) -> None:
    result = resolve(xff(host=value, proto="https"), PEER, TRUSTED)
    assert result == Forwarded(None, "https", host, port, None)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    result = resolve(forwarded(f'proto=https;host="{escaped}"'), PEER, TRUSTED)
    if value.isprintable():
        assert result == Forwarded(None, "https", host, port, None)
    else:  # a control character breaks a quoted-string: the line is unreadable
        assert result is None


@pytest.mark.parametrize(
    ("value", "port"),
    [("443", 443), ("1", 1), ("65535", 65535), ("0", None), ("65536", None), ("-1", None),
     ("44 3", None), ("0x50", None), ("123456", None), ("", None)],
)  # fmt: skip
def test_ports(value: str, port: int | None) -> None:
    result = resolve(xff(port=value, proto="http"), PEER, TRUSTED)
    assert result == Forwarded(None, "http", None, port, None)


@pytest.mark.parametrize(
    ("value", "prefix"),
    [
        ("/api", "/api"),
        ("/api/", "/api"),
        ("/a/b/c", "/a/b/c"),
        ("/", ""),
        ("/caf%C3%A9", "/café"),
        ("/a%20b", "/a b"),
        ("/v1.2", "/v1.2"),
        ("api", None),
        ("//evil.example", None),
        ("/%2Fevil.example", None),
        ("/../admin", None),
        ("/a/..", None),
        ("/%2e%2e/admin", None),
        ("/a\\b", None),
        ("/%5cevil", None),
        ("http://evil.example/x", None),
        ("/x/http://evil.example", None),
        ("/a?b=1", None),
        ("/a#b", None),
        ("/a%0d%0aSet-Cookie:x", None),
        ("/a%00", None),
        ("/a b", None),
        ("/a\tb", None),
        ("/%ff", None),
        ("/é", None),
    ],
)
def test_prefixes(value: str, prefix: str | None) -> None:
    result = resolve(xff(prefix=value, proto="http"), PEER, TRUSTED)
    assert result == Forwarded(None, "http", None, None, prefix)


# -- RFC 7239 Forwarded


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # RFC 7239 section 4's examples.
        (
            ['for="_gazonk"'],
            None,
        ),
        (
            ['For="[2001:db8:cafe::17]:4711"'],
            Forwarded(("2001:db8:cafe::17", 4711), None, None, None, None),
        ),
        (
            ["for=192.0.2.60;proto=http;by=203.0.113.43"],
            Forwarded(("192.0.2.60", 0), "http", None, None, None),
        ),
        (
            ["for=192.0.2.43, for=198.51.100.17"],
            Forwarded(("198.51.100.17", 0), None, None, None, None),
        ),
        # The walk passes over trusted proxies; each element's parameters go with it.
        (
            ['for=192.0.2.60;proto=https;host="example.com:8443", for=10.0.0.5;proto=http'],
            Forwarded(("192.0.2.60", 0), "https", "example.com:8443", 8443, None),
        ),
        (
            ["for=10.0.0.7;proto=https;host=inner.example, for=10.0.0.5;host=outer.example"],
            Forwarded(("10.0.0.7", 0), "https", "inner.example", None, None),
        ),
        # Spoofing: the client's own element is to the left of the one a proxy wrote.
        (
            ["for=6.6.6.6;host=evil.example, for=192.0.2.1;host=example.com;proto=https"],
            Forwarded(("192.0.2.1", 0), "https", "example.com", None, None),
        ),
        (
            ["for=10.0.0.9;proto=http", "for=192.0.2.1;proto=https"],
            Forwarded(("192.0.2.1", 0), "https", None, None, None),
        ),
        # Lines are one list, in order.
        (
            ["for=192.0.2.1;proto=https", "for=10.0.0.2;proto=http"],
            Forwarded(("192.0.2.1", 0), "https", None, None, None),
        ),
        # Names are case-insensitive; values keep their case (schemes are then lowered).
        (
            ["FOR=192.0.2.1;PROTO=HTTPS;Host=Example.com"],
            Forwarded(("192.0.2.1", 0), "https", "Example.com", None, None),
        ),
        # Quoted strings, escapes included.
        (
            [r'for="192.0.2.1";proto="https";host="ex\ample.com"'],
            Forwarded(("192.0.2.1", 0), "https", "example.com", None, None),
        ),
        (
            [r'for="\[2001:db8::1\]:80";ext="a \"quoted\", ; value"'],
            Forwarded(("2001:db8::1", 80), None, None, None, None),
        ),
        # OWS around "," and ";"; empty elements and empty pairs.
        (
            ["  for=192.0.2.1 ; proto=https ;; ,  , for=10.0.0.2 ,"],
            Forwarded(("192.0.2.1", 0), "https", None, None, None),
        ),
        # unknown, obfuscated, without for=: the client is unknown, the hop's values stand.
        (
            ["for=unknown;proto=https;host=example.com, for=10.0.0.2"],
            Forwarded(None, "https", "example.com", None, None),
        ),
        (
            ["for=_hidden;proto=https"],
            Forwarded(None, "https", None, None, None),
        ),
        (
            ['for="192.0.2.1:_port";proto=https'],
            Forwarded(("192.0.2.1", 0), "https", None, None, None),
        ),
        (
            ["proto=https;host=example.com"],
            Forwarded(None, "https", "example.com", None, None),
        ),
        (
            ["for=192.0.2.1, proto=https"],
            Forwarded(None, "https", None, None, None),
        ),
        # RFC 7239 section 6: an IPv6 address goes in brackets, a port after a quoted colon.
        (['for="2001:db8::1";proto=https'], Forwarded(None, "https", None, None, None)),
        (['for="[192.0.2.1]";proto=https'], Forwarded(None, "https", None, None, None)),
        (['for="192.0.2.1:0";proto=https'], Forwarded(None, "https", None, None, None)),
        (['for="192.0.2.1:65536";proto=https'], Forwarded(None, "https", None, None, None)),
        (['for="[2001:db8::1]:x";proto=https'], Forwarded(None, "https", None, None, None)),
        # A line that breaks the grammar is one hop naming nobody: the walk ends there.
        (["for=192.0.2.1:4711;proto=https"], None),
        (["for=[2001:db8::1];proto=https"], None),
        (["for=192.0.2.1 proto=https"], None),
        (["for=192.0.2.1;proto=http;proto=https"], None),
        (['for="192.0.2.1'], None),
        (['for="192.0.2.1"x'], None),
        (["for = 192.0.2.1"], None),
        (["for=;proto=https"], None),
        (["=192.0.2.1"], None),
        (["for=192.0.2.1\x00"], None),
        (['for="192.0.2.1\x01"'], None),
        (['for="192.0.2.1\\'], None),
        (["for=192.0.2.1;proto=https", "for=10.0.0.2;proto=https;;=x"], None),
        # ... and what is to its left stays unread; what is to its right is walked first.
        (
            ["for=garbage:1", "for=192.0.2.1;proto=https"],
            Forwarded(("192.0.2.1", 0), "https", None, None, None),
        ),
        (['for="192.0.2.1, for=10.0.0.2'], None),
    ],
)
def test_forwarded_header(lines: list[str], expected: Forwarded | None) -> None:
    assert resolve(forwarded(*lines), PEER, TRUSTED) == expected


def test_forwarded_takes_precedence_over_x_forwarded() -> None:
    headers = xff(for_="198.51.100.1", proto="http", host="x.example", prefix="/api")
    result = resolve(headers + forwarded("for=192.0.2.1;proto=https"), PEER, TRUSTED)
    assert result == Forwarded(("192.0.2.1", 0), "https", None, None, None)
    # Even a broken Forwarded: a client could send one to make us read an
    # X-Forwarded-For it wrote itself.
    assert resolve(forwarded('for="broken') + headers, PEER, TRUSTED) is None
    assert resolve(forwarded("") + headers, PEER, TRUSTED) is None


def test_forwarded_all_trusted_takes_the_leftmost_element() -> None:
    lines = ["for=10.0.0.9;proto=https;host=first.example", "for=10.0.0.8;proto=http"]
    assert resolve(forwarded(*lines), PEER, TRUSTED) == Forwarded(
        ("10.0.0.9", 0), "https", "first.example", None, None
    )


# -- never raises for header content

_HEADER_NAMES = st.sampled_from(
    [b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
     b"x-forwarded-port", b"x-forwarded-prefix"]
)  # fmt: skip
_PIECES = st.sampled_from(
    [b"for=", b"proto=", b"host=", b'"', b"\\", b";", b",", b" ", b"[", b"]", b":", b"_",
     b"10.0.0.2", b"192.0.2.1", b"2001:db8::1", b"https", b"unknown", b"%2e", b"/", b"\x00",
     b"\xff"]
)  # fmt: skip
_VALUES = st.one_of(st.binary(max_size=40), st.lists(_PIECES, max_size=12).map(b"".join))


@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(st.lists(st.tuples(_HEADER_NAMES, _VALUES), max_size=6))
def test_any_header_content_gives_an_answer(headers: HeaderList) -> None:
    result = resolve(headers, PEER, TRUSTED)
    if result is not None:
        assert result != Forwarded(None, None, None, None, None)
        assert result.scheme in (None, "http", "https")
        assert result.port is None or 0 < result.port < 65536
        assert result.prefix is None or result.prefix == "" or result.prefix.startswith("/")
        if result.client is not None:
            assert 0 <= result.client[1] < 65536
