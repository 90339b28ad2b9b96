"""Units, defined once: sizes are bytes and durations seconds everywhere in rootserve."""

from __future__ import annotations

from typing import Final

__all__ = ["GIB", "KIB", "MIB", "SECONDS"]

KIB: Final = 1024
MIB: Final = 1024 * KIB
GIB: Final = 1024 * MIB
SECONDS: Final = 1.0
