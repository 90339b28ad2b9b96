"""The reaper's passes (server/reaper.py): connections whose deadline passed are ended
REAP_BATCH at a time, the loop running its other callbacks between two batches, and a
connection that moved on while its batch waited is left alone."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace

from rootserve.server.reaper import REAP_BATCH, Reaper
from rootserve.server.running import Running
from rootserve.server.state import NO_DEADLINE


@dataclass(eq=False)
class Due:
    deadline: float
    ended: list[Due] = field(default_factory=list)

    def on_deadline(self) -> None:
        self.deadline = NO_DEADLINE
        self.ended.append(self)


def test_a_long_pass_is_cut_in_batches_with_the_loop_running_between():
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ended: list[Due] = []
        state = SimpleNamespace(loop=loop, connections=Running(), sessions=Running())
        conns = [Due(loop.time() - 1, ended) for _ in range(2 * REAP_BATCH + 10)]
        state.connections.update(conns)
        passes: list[int] = []
        reaper = Reaper(state, 60.0, lambda: passes.append(len(ended)))  # type: ignore[arg-type]
        reaper._run()
        assert len(ended) == REAP_BATCH
        assert passes == [REAP_BATCH]
        # One that got busy meanwhile (its deadline moved on) is not ended by the pass.
        spared = next(c for c in conns if c not in ended)
        spared.deadline = NO_DEADLINE
        reaper._run()  # the next tick while the pass is at work: it starts no second one
        assert len(ended) == REAP_BATCH
        await asyncio.sleep(0)  # noqa: sleep-ok (one loop turn: one more batch)
        assert 2 * REAP_BATCH - 1 <= len(ended) <= 2 * REAP_BATCH
        await asyncio.sleep(0)  # noqa: sleep-ok (one loop turn)
        assert len(ended) == len(conns) - 1
        assert spared not in ended
        assert reaper._rest is None
        reaper.stop()

    asyncio.run(main())


def test_stop_cancels_the_rest_of_a_pass():
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ended: list[Due] = []
        state = SimpleNamespace(loop=loop, connections=Running(), sessions=Running())
        state.connections.update(Due(loop.time() - 1, ended) for _ in range(REAP_BATCH + 1))
        reaper = Reaper(state, 60.0, lambda: None)  # type: ignore[arg-type]
        reaper._run()
        reaper.stop()
        await asyncio.sleep(0)  # noqa: sleep-ok (one loop turn)
        assert len(ended) == REAP_BATCH

    asyncio.run(main())
