"""rootserve's own log output: one handler on stderr for the `rootserve` loggers."""

from __future__ import annotations

import logging
import sys

__all__ = ["setup_logging"]


def setup_logging(level: str, *, with_pid: bool = False) -> None:
    """Send rootserve's logs to stderr at `level`, each line headed by its level. In a
    worker of a supervisor (`with_pid`), each line also says which process wrote it."""
    handler = logging.StreamHandler(sys.stderr)
    head = "%(levelname)s: [%(process)d] " if with_pid else "%(levelname)s: "
    handler.setFormatter(logging.Formatter(head + "%(message)s"))
    root = logging.getLogger("rootserve")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
