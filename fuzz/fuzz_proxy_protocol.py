"""Harness: ProxyHeaderParser (PROXY protocol v1 and v2) on any bytes, in chunks.

Checks: feed raises nothing but ProxyProtocolError (the same error again on every later
call), and RuntimeError only when fed after its result; the outcome (the header's fields
with what followed it, or its error) is the same for the payload fed whole and in chunks.
"""

from __future__ import annotations

from _common import corpus_raws, run, seed, split
from tests.protocol.test_fuzz_proxy_headers import V1, V2, proxy_outcome


def test_one_input(data: bytes) -> None:
    _, payload, chunks = split(data)
    assert proxy_outcome(chunks) == proxy_outcome([payload])


def seeds() -> list[bytes]:
    request = corpus_raws()[0]
    headers = V1 + V2
    return [
        seed(header + rest, cut=cut)
        for header in headers
        for rest in (b"", request)
        for cut in (0, 3)
    ]


if __name__ == "__main__":
    run(test_one_input, seeds)
