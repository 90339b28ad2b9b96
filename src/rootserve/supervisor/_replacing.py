"""Replacing workers one at a time: the part of the supervisor (arbiter.py) that HUP,
--reload and the retirement limits share.

A new worker starts; once it is ready (its lifespan startup done) the old one it replaces
gets HUP and drains (its WebSockets get 1012, Service Restart), then the next new one
starts. The new code serves before the old stops, so no request fails, and two workers
overlap only for the time one starts. A new worker that cannot start stops the roll: the
old workers go on serving, and one line says why.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rootserve.supervisor.child import WorkerHandle

__all__ = ["Replacing"]

logger = logging.getLogger("rootserve.error")


class Replacing:
    """A mixin of Arbiter: its state lives there."""

    if TYPE_CHECKING:  # what the Arbiter provides (declared here for the type checker)
        workers: list[WorkerHandle]
        _to_retire: list[WorkerHandle]
        _replacement: WorkerHandle | None
        _roll: str
        _reload_pending: bool

        def _spawn(self) -> WorkerHandle: ...
        def _serving(self) -> int: ...
        def _count_restart(self, reason: str) -> None: ...

    def _start_roll(self, why: str) -> None:
        self._roll = why
        olds = [w for w in self.workers if not w.stopping and w is not self._replacement]
        logger.info("%s: restarting %d worker(s), one at a time", why, len(olds))
        self._retire(olds)

    def _retire(self, olds: list[WorkerHandle]) -> None:
        self._to_retire += [w for w in olds if w not in self._to_retire and w.replacing is None]
        if self._replacement is None:
            self._replace_next()

    def _replace_next(self) -> None:
        self._to_retire = [w for w in self._to_retire if w in self.workers and not w.stopping]
        if self._to_retire:
            old = self._to_retire.pop(0)
            self._replacement = self._spawn()
            self._count_restart("rolled" if self._roll else "retired")
            self._replacement.replacing = old
            return
        if self._roll:
            logger.info("Rolling restart done: %d worker(s)", self._serving())
            self._roll = ""
        if self._reload_pending:
            self._reload_pending = False
            self._start_roll("Reload")

    def _on_failed_replacement(self, new: WorkerHandle, code: int | None) -> None:
        serving = [w for w in self.workers if not w.stopping]
        if self._roll == "Reload":
            logger.error(
                "Reload failed: new worker %d exited with %s before it was ready (see its "
                "error above); the old code goes on serving until the next change",
                new.pid,
                code,
            )
        else:
            logger.error(
                "Rolling restart stopped: new worker %d exited with %s before it was ready "
                "(see its error above); the %d old worker(s) go on serving",
                new.pid,
                code,
                len(serving),
            )
        self._to_retire.clear()
        self._roll = ""
        if self._reload_pending:
            self._reload_pending = False
            self._start_roll("Reload")
