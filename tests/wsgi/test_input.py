"""`wsgi.input`: the body fed by the loop thread and read by an app thread.

The loop's side (feed, end, abort) is called from the test or from a feeder thread; the
app's side is PEP 3333 "Input and Error Streams": read(size), readline(size), readlines(hint)
and iteration, b"" at the end. Flow control: `feed` says when the buffer is over its high
water mark, and reading it back under the low mark asks the loop to resume.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rootserve.wsgi.input import (
    EMPTY_INPUT,
    HIGH_WATER,
    LOW_WATER,
    BodyInput,
    ClientDisconnected,
)

WAIT = 10.0


def body_input(*chunks: bytes, end: bool = True, **hooks: Callable[[], None]) -> BodyInput:
    hooks.setdefault("resume_reading", lambda: None)
    stream = BodyInput(**hooks)  # type: ignore[arg-type]
    for chunk in chunks:
        stream.feed(chunk)
    if end:
        stream.end()
    return stream


def in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run `target` on another thread (an "app thread"); its result or exception lands in
    the list."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(target())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_read_sizes_across_chunks():
    stream = body_input(b"abc", b"defg", b"h")
    assert stream.read(2) == b"ab"
    assert stream.read(3) == b"cde"
    assert stream.read(0) == b""
    assert stream.read(100) == b"fgh"
    assert stream.read(1) == b""
    assert stream.read() == b""


@pytest.mark.parametrize("size", [-1, None])
def test_read_everything(size: int | None):
    stream = body_input(b"one ", b"two ", b"three")
    assert stream.read(size) == b"one two three"
    assert stream.read(size) == b""


def test_readline_and_its_size():
    stream = body_input(b"first li", b"ne\nsecond\n", b"third")
    assert stream.readline() == b"first line\n"
    assert stream.readline(3) == b"sec"
    assert stream.readline(None) == b"ond\n"
    assert stream.readline() == b"third"
    assert stream.readline() == b""


def test_readline_then_read_keeps_the_rest():
    stream = body_input(b"head\nbody bytes")
    assert stream.readline() == b"head\n"
    assert stream.read(4) == b"body"
    assert stream.read() == b" bytes"


def test_readlines_and_iteration():
    assert body_input(b"a\nb\n", b"c").readlines() == [b"a\n", b"b\n", b"c"]
    assert body_input(b"aa\nbb\ncc\n").readlines(3) == [b"aa\n"]  # stops once past the hint
    assert list(body_input(b"x\ny\n")) == [b"x\n", b"y\n"]


def test_empty_input():
    assert EMPTY_INPUT.read() == EMPTY_INPUT.read(10) == b""
    assert EMPTY_INPUT.readline() == b""
    assert EMPTY_INPUT.readlines() == []
    assert list(EMPTY_INPUT) == []


@settings(database=None, deadline=None, max_examples=150)
@given(
    st.lists(st.binary(min_size=1, max_size=40), max_size=12),
    st.lists(st.integers(min_value=-1, max_value=50), min_size=1, max_size=30),
)
def test_any_chunking_and_reads_give_the_body_back(chunks: list[bytes], sizes: list[int]):
    stream = body_input(*chunks)
    got = []
    for size in sizes:
        got.append(stream.read(size))
    got.append(stream.read())
    assert b"".join(got) == b"".join(chunks)


def test_read_waits_for_data_fed_later():
    stream = body_input(end=False)
    thread, out = in_thread(lambda: stream.read(6))
    stream.feed(b"abc")
    stream.feed(b"def")
    thread.join(WAIT)
    assert out == [b"abcdef"]
    thread, out = in_thread(stream.read)
    stream.feed(b"tail")
    stream.end()
    thread.join(WAIT)
    assert out == [b"tail"]


def test_abort_wakes_a_waiting_reader_with_an_oserror():
    stream = body_input(b"part", end=False)
    assert stream.read(4) == b"part"
    thread, out = in_thread(lambda: stream.read(10))
    stream.abort()
    thread.join(WAIT)
    assert len(out) == 1 and isinstance(out[0], ClientDisconnected)
    assert isinstance(out[0], OSError)
    with pytest.raises(ClientDisconnected):
        stream.read(1)


def test_abort_after_the_end_loses_nothing():
    stream = body_input(b"whole")
    stream.abort()
    assert stream.read() == b"whole"


def test_feed_asks_to_pause_over_high_water_and_a_read_resumes():
    resumed: list[bool] = []
    stream = body_input(end=False, resume_reading=lambda: resumed.append(True))
    piece = b"x" * (64 * 1024)
    pauses = [stream.feed(piece) for _ in range(HIGH_WATER // len(piece) + 1)]
    assert pauses[-1] is True and not any(pauses[:-1])
    buffered = len(piece) * len(pauses)
    stream.read(buffered - LOW_WATER - 1)
    assert resumed == []  # still above the low mark
    stream.read(1)
    assert resumed == [True]
    stream.read(LOW_WATER)
    assert resumed == [True]  # once per crossing


def test_ask_for_body_once_and_only_when_the_reader_must_wait():
    asked: list[bool] = []
    stream = body_input(b"here", end=False, ask_for_body=lambda: asked.append(True))
    assert stream.read(4) == b"here"
    assert asked == []  # the body came without asking (a client need not wait for 100)
    thread, out = in_thread(lambda: stream.read(3))
    stream.feed(b"more")
    thread.join(WAIT)
    assert out == [b"mor"]
    assert asked == [True]
    thread, out = in_thread(lambda: stream.read(10))
    stream.end()
    thread.join(WAIT)
    assert out == [b"e"]
    assert asked == [True]


def test_asking_happens_before_the_wait():
    """The 100 Continue must go out before the reader waits for a body that a client holds
    back until it sees the 100. `ask_for_body` only schedules work on the loop (it is
    called with the buffer's lock held), so here it wakes a "client" thread."""
    asked = threading.Event()
    stream = body_input(end=False, ask_for_body=asked.set)

    def client() -> bool:
        was_asked = asked.wait(WAIT)
        stream.feed(b"sent after 100")
        stream.end()
        return was_asked

    thread, out = in_thread(client)
    assert stream.read() == b"sent after 100"
    thread.join(WAIT)
    assert out == [True]
