"""ASGI lifespan: startup before the first request, shutdown after the last.

How this works. `Lifespan` calls the app once with a `lifespan` scope in its own task and
talks to it through two queues: it sends `lifespan.startup` and waits for
`lifespan.startup.complete` or `.failed` (or the app returning or raising), and later the
same for shutdown. In `auto` mode an app that raises before answering startup is taken not to
support lifespan (many WSGI-style or hand-written apps don't), and serving goes on; in `on`
mode that is a failure. `NullLifespan` is the object for `off`: no task, no state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from rootserve.types import ASGIApp, LifespanEvent, SendMessage

__all__ = ["Lifespan", "LifespanFailed", "NullLifespan"]

logger = logging.getLogger("rootserve.error")


class LifespanFailed(Exception):
    """Startup (or shutdown) failed; the message says how, for the one-line exit."""


class NullLifespan:
    """Lifespan `off`: nothing is sent, and request scopes carry no `state`."""

    state: dict[str, Any] | None = None

    async def startup(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None


class Lifespan:
    def __init__(self, app: ASGIApp, *, required: bool) -> None:
        self.app = app
        self.required = required
        self.state: dict[str, Any] | None = None
        self._shared: dict[str, Any] = {}
        self._to_app: asyncio.Queue[LifespanEvent] = asyncio.Queue()
        self._from_app: asyncio.Queue[Mapping[str, object]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._unsupported = False
        self._error: BaseException | None = None

    async def _main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self._shared,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            self._error = exc
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            # However the app ended, whoever waits for an answer gets one.
            self._from_app.put_nowait({"type": "rootserve.lifespan.ended"})

    async def _receive(self) -> LifespanEvent:
        return await self._to_app.get()

    async def _send(self, message: SendMessage) -> None:
        kind = message.get("type")
        allowed = {
            "lifespan.startup.complete",
            "lifespan.startup.failed",
            "lifespan.shutdown.complete",
            "lifespan.shutdown.failed",
        }
        if kind not in allowed:
            raise RuntimeError(f"Unexpected ASGI lifespan message {kind!r}")
        await self._from_app.put(dict(message))

    async def startup(self) -> None:
        """Run startup; raise LifespanFailed when the app reports or causes a failure."""
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._to_app.put({"type": "lifespan.startup"})
        answer = await self._from_app.get()
        kind = answer["type"]
        if kind == "lifespan.startup.complete":
            self.state = self._shared
            return
        if kind == "lifespan.startup.failed":
            raise LifespanFailed(f"the app's startup failed: {answer.get('message') or '-'}")
        # The app returned or raised without answering.
        if self.required:
            if self._error is not None:
                logger.error("Exception in ASGI lifespan startup", exc_info=self._error)
                raise LifespanFailed(
                    f"the app raised {type(self._error).__name__} during lifespan startup"
                )
            raise LifespanFailed("the app returned without answering lifespan.startup")
        self._unsupported = True
        if self._error is not None:
            logger.info(
                "The app does not support ASGI lifespan (%s: %s); serving without it "
                "(--lifespan off hides this message, --lifespan on makes it fatal)",
                type(self._error).__name__,
                self._error,
            )

    async def shutdown(self) -> None:
        if self._unsupported or self._task is None or self._task.done():
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        answer = await self._from_app.get()
        kind = answer["type"]
        if kind == "lifespan.shutdown.failed":
            logger.error("The app's shutdown failed: %s", answer.get("message") or "-")
        elif kind != "lifespan.shutdown.complete" and self._error is not None:
            logger.error("Exception in ASGI lifespan shutdown", exc_info=self._error)
        try:
            await asyncio.wait_for(self._task, timeout=5)
        except (TimeoutError, asyncio.CancelledError):
            pass
        except Exception:
            pass
