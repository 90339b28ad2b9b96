"""What the harnesses share: rootserve's protocol modules imported under atheris's
instrumentation (so libFuzzer's coverage is of that code), the input's layout, and the
test suite's checks.

An input is two header bytes and a payload: the first byte picks a harness's options (its
limits, trusted peers...), the second how the payload is cut into feeds, as the corpus test
cuts it (`tests/protocol/_corpus.chunks_for`: 0 whole, 1 byte by byte, else random chunks
seeded with it). So the fuzzer mutates the cut like any other byte, and a seed is a corpus
case behind two zero bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `tests.protocol`, for the checks the tests make

# Only rootserve.protocol is instrumented: what it imports (config, the standard library)
# would add edges the fuzzer cannot steer by these inputs.
with atheris.instrument_imports(include=["rootserve.protocol"]):
    import rootserve.protocol._chunked
    import rootserve.protocol.forwarded
    import rootserve.protocol.http11
    import rootserve.protocol.proxy_protocol  # noqa: F401

from tests.protocol._corpus import chunks_for, load_cases  # noqa: E402

HEADER = 2


def split(data: bytes) -> tuple[int, bytes, list[bytes]]:
    """(the options byte, the payload, the payload cut into feeds)."""
    options, cut, payload = data[0] if data else 0, data[1] if len(data) > 1 else 0, data[HEADER:]
    feed = "whole" if cut == 0 else "bytes" if cut == 1 else f"random-{cut}"
    return options, payload, chunks_for(payload, feed) if payload else []


def corpus_raws() -> list[bytes]:
    """The raw bytes of the cases in tests/protocol/corpus, valid and invalid, but those
    that show a known bug or hold only for small reads (see corpus/README.md)."""
    return [
        case.raw
        for kind in ("valid", "invalid")
        for case in load_cases(kind)
        if case.raw and case.xfail is None and "whole" in case.feeds
    ]


def seed(payload: bytes, options: int = 0, cut: int = 0) -> bytes:
    return bytes([options, cut]) + payload


def run(test_one_input: Callable[[bytes], None], seeds: Callable[[], list[bytes]]) -> None:
    """Fuzz with libFuzzer's arguments; `--seeds DIR` writes the seed inputs there instead
    (and checks that each passes the harness: a seed that fails is a bug already)."""
    if sys.argv[1:2] == ["--seeds"]:
        folder = Path(sys.argv[2])
        folder.mkdir(parents=True, exist_ok=True)
        for number, data in enumerate(seeds()):
            test_one_input(data)
            (folder / f"seed-{number:04d}").write_bytes(data)
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
