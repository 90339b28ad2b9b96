"""What the running process costs: its resident memory (for --limit-worker-memory and,
later, the metrics)."""

from __future__ import annotations

import os
import resource
import sys
from typing import Final

__all__ = ["rss_bytes"]

_PAGE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """This process's resident set size now, in bytes. On Linux from /proc/self/statm (its
    second field, in pages: one small read, no parsing of the status text); elsewhere the
    peak so far from getrusage, the nearest the standard library offers."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes; else KiB
