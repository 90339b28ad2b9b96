"""Harness: the chunked-body scan (`_chunked._ChunkedBody`) on its own, on any bytes.

Checks: it raises nothing; it refuses only with 400 or 413; and where the body ends (or why
it is refused) is the same for the payload fed whole and in chunks, up to a chunk-size
line that llhttp refuses itself (tests/protocol/test_fuzz_properties._Watched).
"""

from __future__ import annotations

from _common import corpus_raws, run, seed, split
from tests.protocol.test_fuzz_properties import same_scan, scan

LIMITS = [0, 16, 1000, 1 << 20]


def test_one_input(data: bytes) -> None:
    options, payload, chunks = split(data)
    limit = LIMITS[options % len(LIMITS)]
    whole = scan(payload, [payload], limit)
    assert same_scan(scan(payload, chunks, limit), whole)


def seeds() -> list[bytes]:
    # The bodies of the corpus's chunked requests: what follows the first head.
    bodies = [raw.partition(b"\r\n\r\n")[2] for raw in corpus_raws() if b"chunked" in raw.lower()]
    return [seed(body, cut=cut) for body in bodies if body for cut in (0, 5)]


if __name__ == "__main__":
    run(test_one_input, seeds)
