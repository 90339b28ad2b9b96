"""`--reload`: watch the app's files and tell the supervisor when they change.

How this works. A thread runs watchfiles (native file events: inotify, FSEvents, ...) over
the watched folders and, for each batch of changes that pass the filter, calls `notify`
with the changed paths; the supervisor wakes its one loop and rolls its workers onto the
new code (arbiter.py), keeping the old ones when the new code does not start.

What is watched: files whose name matches an include pattern (`*.py`, plus
--reload-include), unless a part of their path below the watched folder matches an exclude
pattern (the ones below, plus --reload-exclude). Matching the parts below the folder, not
the whole path, lets a project live under a hidden folder (`~/.work/app`) and still skip
its own `.venv`.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from rootserve.config import Config

__all__ = ["ALWAYS_EXCLUDED", "ALWAYS_INCLUDED", "ReloadFilter", "Watcher", "reload_roots"]

logger = logging.getLogger("rootserve.error")

ALWAYS_INCLUDED: Final = ("*.py",)
ALWAYS_EXCLUDED: Final = (
    ".*",  # .git, .venv, .mypy_cache, editors' swap files (.app.py.swp)
    "__pycache__",
    "*.py[cod]",
    "*~",
    "venv",
    "node_modules",
    "site-packages",
)
STEP_MS: Final = 50  # a batch ends after this long without a new change (an editor's save)
STOP_CHECK_MS: Final = 500  # how often the watching thread looks at its stop event


class ReloadFilter:
    """Which changed paths matter: see the module's docstring."""

    def __init__(self, roots: Sequence[Path], include: Iterable[str], exclude: Iterable[str]):
        self.roots = [root.resolve() for root in roots]
        self.include = (*ALWAYS_INCLUDED, *include)
        self.exclude = (*ALWAYS_EXCLUDED, *exclude)

    def __call__(self, change: Any, path: str) -> bool:
        return self.matches(Path(path))

    def matches(self, path: Path) -> bool:
        parts = self._parts_below_root(path)
        if parts is None:
            return False
        if any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in self.exclude):
            return False
        return any(fnmatch.fnmatch(parts[-1], pattern) for pattern in self.include)

    def _parts_below_root(self, path: Path) -> tuple[str, ...] | None:
        for root in self.roots:
            if path.is_relative_to(root):
                parts = path.relative_to(root).parts
                return parts or None
        return None


def reload_roots(config: Config) -> list[Path]:
    """The folders --reload watches: --reload-dir, else --app-dir. ValueError names a
    missing one."""
    roots = [Path(d) for d in config.reload_dir] or [Path(config.app_dir)]
    missing = [str(root) for root in roots if not root.is_dir()]
    if missing:
        raise ValueError(f"--reload-dir {', '.join(missing)}: not a folder")
    return [root.resolve() for root in roots]


class Watcher:
    """Watch `config`'s folders in a thread; call `notify(paths)` on each batch."""

    def __init__(self, config: Config, notify: Callable[[list[str]], None]) -> None:
        self.roots = reload_roots(config)
        self.filter = ReloadFilter(self.roots, config.reload_include, config.reload_exclude)
        self.notify = notify
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rootserve-reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(STOP_CHECK_MS / 1000 * 4)

    def _run(self) -> None:
        from watchfiles import watch  # imported only with --reload: it starts no thread

        try:
            for changes in watch(
                *self.roots,
                watch_filter=self.filter,
                step=STEP_MS,
                stop_event=self._stop,
                rust_timeout=STOP_CHECK_MS,
                raise_interrupt=False,
            ):
                paths = sorted({path for _, path in changes})
                if paths:
                    self.notify(paths)
        except Exception:  # the watcher must never take the server down with it
            logger.exception("--reload: watching stopped")
