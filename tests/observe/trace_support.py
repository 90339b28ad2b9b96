"""Catching `--trace` blocks in tests: a handler on the `rootserve.trace` logger that a test
waits on (blocks are written when the app's call ends, which may be after the client has
its answer), and the masks that make a block comparable with a golden file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import RecordedLog, recorded_log

GOLDEN = Path(__file__).parent / "golden"
_TIME = re.compile(r"^ *\d+\.\d{3} ms", re.MULTILINE)


@contextmanager
def trace_blocks() -> Iterator[RecordedLog]:
    """Each block the tracer writes while the block runs (`.messages`, `.wait_for`)."""
    with recorded_log("rootserve.trace") as blocks:
        yield blocks


def masked(text: str, **values: int | str) -> str:
    """`text` with each time as `T ms` (right-aligned as written) and each of `values`
    (ports, say) as `<name>`."""
    text = _TIME.sub(lambda m: "T ms".rjust(len(m[0])), text)
    for name, value in values.items():
        text = text.replace(str(value), f"<{name}>")
    return text


def check_golden(name: str, text: str) -> None:
    """`text` equals the golden file `name` (ROOTSERVE_UPDATE_GOLDEN=1 rewrites it)."""
    import os

    path = GOLDEN / name
    if os.environ.get("ROOTSERVE_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == path.read_text(encoding="utf-8"), f"differs from {path}:\n{text}"
