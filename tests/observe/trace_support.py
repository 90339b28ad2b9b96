"""Catching `--trace` blocks in tests: a handler on the `rootserve.trace` logger that a test
waits on (blocks are written when the app's call ends, which may be after the client has
its answer), and the masks that make a block comparable with a golden file."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"
_TIME = re.compile(r"^ *\d+\.\d{3} ms", re.MULTILINE)


class Blocks(logging.Handler):
    """Every block the tracer writes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[str] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.blocks.append(record.getMessage())
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 10.0) -> list[str]:
        """The blocks written so far, once one of them contains `text`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(text in block for block in self.blocks):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no trace block with {text!r}: {self.blocks!r}")
                self._changed.wait(left)
            return list(self.blocks)


@contextmanager
def trace_blocks() -> Iterator[Blocks]:
    logger = logging.getLogger("rootserve.trace")
    handler = Blocks()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


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
