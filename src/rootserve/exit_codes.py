"""The exit codes of the `rootserve` command, defined once (README: "Exit codes")."""

from __future__ import annotations

from typing import Final

__all__ = ["EXIT_APP", "EXIT_OK", "EXIT_USAGE"]

EXIT_OK: Final = 0  # a clean stop
EXIT_USAGE: Final = 2  # a bad command line, setting or address
EXIT_APP: Final = 3  # the app could not be imported, or its startup failed
