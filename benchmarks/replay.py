"""The Python share of one request, without sockets: rootserve's and uvicorn's protocol
objects fed the same request bytes through a fake transport, on uvloop, in one process.

    .venv/bin/python benchmarks/replay.py                 # both, 200k requests each, 5 rounds
    .venv/bin/python benchmarks/replay.py --only rootserve --requests 400000
    .venv/bin/python benchmarks/replay.py --profile       # cProfile of rootserve's share
    .venv/bin/python benchmarks/replay.py --wsgi --only rootserve  # a WSGI app on app threads
    .venv/bin/python benchmarks/replay.py --wsgi-post     # a 64 KiB POST to the WSGI echo app
    .venv/bin/python benchmarks/replay.py --asgi-post     # a 64 KiB POST to the ASGI echo app

What it measures: `data_received` with a whole request (the head wrk sends), the app's task
(benchmarks/apps/asgi_hello.py; with `--wsgi`, benchmarks/apps/wsgi_hello.py on rootserve's
app threads) and the write of the answer into a transport that only counts bytes.
`--connections` connections take turns, one request each per loop pass, as wrk's do, so the
loop's ready queue holds that many task steps at once. No syscall, no epoll: what is left is
the server's own Python work plus the loop's task scheduling, which is the part a change to
rootserve's hot path can move. `make bench` stays the measure that counts (CPU per request
of the whole server under wrk); this one is for profiling and for comparing two versions of
the hot path quickly and quietly (pin it: `taskset -c 0`).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import cProfile
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.apps.asgi_echo import app as asgi_echo_app
from benchmarks.apps.asgi_hello import app
from benchmarks.apps.wsgi_echo import app as wsgi_echo_app
from benchmarks.apps.wsgi_hello import app as wsgi_app

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"  # what wrk sends
# --wsgi-post / --asgi-post: a 64 KiB upload echoed back (run.py's wsgi-echo-64k and
# asgi-echo-64k), head and body together
POST_BODY = b"x" * (64 * 1024)
POST_REQUEST = (
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(POST_BODY)
) + POST_BODY


class Answers:
    """Counts the answers written by every transport; wakes the replay once all are in."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.waiter: asyncio.Future[None] | None = None

    def add(self) -> None:
        self.count += 1
        if self.count >= self.target and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self, target: int) -> None:
        self.target = target
        if self.count < target:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter


class FakeTransport:
    """Enough of an asyncio transport for both servers; writes are counted, not sent."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.written = 0
        self.writes = 0
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return ("127.0.0.1", 8000)
        if name == "peername":
            return ("127.0.0.1", 50000)
        return default

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.written += len(data)
        self.answers.add()

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        self.writes += 1
        self.written += sum(map(len, parts))
        self.answers.add()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def write_eof(self) -> None:
        pass

    def abort(self) -> None:
        self.closed = True


def rootserve_factory(
    loop: asyncio.AbstractEventLoop, wsgi: bool = False, metrics: bool = False, post: bool = False
) -> Callable[[], Any]:
    from rootserve.asgi.http import ASGIRunner
    from rootserve.config import Config
    from rootserve.server.connection import Connection
    from rootserve.server.state import ServerState
    from rootserve.wsgi.runner import WSGIRunner

    runner: Any = ASGIRunner(asgi_echo_app if post else app, root_path="", state={}, loop=loop)
    if wsgi:
        the_app = wsgi_echo_app if post else wsgi_app
        runner = WSGIRunner(the_app, threads=8, root_path="", multiprocess=False, loop=loop)
    if metrics:  # --metrics-bind: prometheus_client's files in a folder of their own
        from rootserve.observe.metrics import use_multiprocess_dir

        atexit.register(use_multiprocess_dir())
    config = Config(access_log=False, metrics_bind="127.0.0.1:0" if metrics else "")
    state = ServerState.from_config(config, runner=runner, loop=loop)
    return lambda: Connection(state)


def uvicorn_factory(loop: asyncio.AbstractEventLoop, wsgi: bool = False) -> Callable[[], Any]:
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    config = Config(
        wsgi_app if wsgi else app,
        interface="wsgi" if wsgi else "asgi3",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    config.load()
    server_state = ServerState()
    return lambda: HttpToolsProtocol(config, server_state, {}, loop)


FACTORIES = {"rootserve": rootserve_factory, "uvicorn": uvicorn_factory}


async def replay(
    factory: Callable[[], Any], requests: int, connections: int, request: bytes = REQUEST
) -> float:
    """Nanoseconds per request for `requests` requests over `connections` connections."""
    protocols = []
    transports = []
    answers = Answers()
    for _ in range(connections):
        protocol, transport = factory(), FakeTransport(answers)
        protocol.connection_made(transport)
        protocols.append(protocol)
        transports.append(transport)
    rounds = requests // connections
    sleep = asyncio.sleep
    started = time.perf_counter_ns()
    for done in range(connections, (rounds + 1) * connections, connections):
        for protocol in protocols:
            protocol.data_received(request)
        await sleep(0)  # the tasks made above run, in order, before this resumes
        await sleep(0)  # and what they scheduled (uvicorn's second step)
        await answers.wait(done)  # a WSGI app answers from its threads: wait for those
    elapsed = time.perf_counter_ns() - started
    answered = sum(t.writes for t in transports)
    if answered < rounds * connections:
        raise RuntimeError(f"only {answered} writes for {rounds * connections} requests")
    for protocol in protocols:
        protocol.connection_lost(None)
    return elapsed / (rounds * connections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(FACTORIES), action="append")
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile rootserve's share")
    parser.add_argument("--wsgi", action="store_true", help="the WSGI hello app instead")
    parser.add_argument("--metrics", action="store_true", help="rootserve with --metrics-bind")
    parser.add_argument(
        "--wsgi-post", action="store_true", help="WSGI, a 64 KiB POST echoed (rootserve only)"
    )
    parser.add_argument(
        "--asgi-post", action="store_true", help="ASGI, a 64 KiB POST echoed (rootserve only)"
    )
    args = parser.parse_args()
    request = REQUEST
    post = args.wsgi_post or args.asgi_post
    if args.wsgi_post:
        args.wsgi, args.only, request = True, ["rootserve"], POST_REQUEST
    if args.asgi_post:
        args.only, request = ["rootserve"], POST_REQUEST
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    if args.profile:
        factory = rootserve_factory(loop, args.wsgi, args.metrics, post)
        loop.run_until_complete(replay(factory, 20_000, args.connections, request))
        profiler = cProfile.Profile()
        profiler.enable()
        loop.run_until_complete(replay(factory, args.requests, args.connections, request))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    names = args.only or sorted(FACTORIES, reverse=True)
    results: dict[str, list[float]] = {name: [] for name in names}
    factories = {
        name: rootserve_factory(loop, args.wsgi, args.metrics, post)
        if name == "rootserve"
        else FACTORIES[name](loop, args.wsgi)
        for name in names
    }
    for name in names:  # warm up
        loop.run_until_complete(replay(factories[name], 20_000, args.connections, request))
    for _ in range(args.rounds):
        for name in names:  # interleaved, so drift hits both alike
            ns = loop.run_until_complete(
                replay(factories[name], args.requests, args.connections, request)
            )
            results[name].append(ns)
    for name in names:
        best, median = min(results[name]), statistics.median(results[name])
        print(f"{name:10} best {best / 1000:6.2f} us/req   median {median / 1000:6.2f} us/req")
    if len(names) == 2:
        a, b = (min(results[n]) for n in names)
        print(f"{names[0]}/{names[1]}: {a / b:.2f}x")


if __name__ == "__main__":
    main()
