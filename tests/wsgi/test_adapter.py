"""The adapter's parts that stand alone: `wsgi.file_wrapper` and the app threads."""

from __future__ import annotations

import io
import logging
import threading
from typing import Any

import pytest
from tests.wsgi.support import capture_errors

from rootserve.wsgi.adapter import FileWrapper
from rootserve.wsgi.threads import AppThreads

WAIT = 10.0


# -- wsgi.file_wrapper (PEP 3333 "Optional Platform-Specific File Handling") ---------------


def test_file_wrapper_reads_blocks_of_the_given_size():
    wrapper = FileWrapper(io.BytesIO(b"0123456789"), 4)
    assert list(wrapper) == [b"0123", b"4567", b"89"]


def test_file_wrapper_default_block_is_large():
    data = bytes(range(256)) * 4096  # 1 MiB
    blocks = list(FileWrapper(io.BytesIO(data)))
    assert b"".join(blocks) == data
    assert len(blocks) <= 16


def test_file_wrapper_gives_bytes_from_any_buffer():
    class Buffers:
        def __init__(self) -> None:
            self.parts: list[Any] = [bytearray(b"ab"), memoryview(b"cd")]

        def read(self, size: int) -> Any:
            return self.parts.pop(0) if self.parts else b""

    blocks = list(FileWrapper(Buffers(), 2))
    assert blocks == [b"ab", b"cd"]
    assert all(type(block) is bytes for block in blocks)


def test_file_wrapper_close_closes_the_file():
    file = io.BytesIO(b"data")
    wrapper = FileWrapper(file)
    assert list(wrapper) == [b"data"]
    wrapper.close()
    assert file.closed


def test_file_wrapper_of_an_object_without_close():
    class ReadOnly:
        def read(self, size: int) -> bytes:
            return b""

    wrapper = FileWrapper(ReadOnly())
    assert list(wrapper) == []
    assert not hasattr(wrapper, "close")


# -- the app threads -----------------------------------------------------------------------


class Job:
    def __init__(self, action: Any = None) -> None:
        self.action = action
        self.thread: threading.Thread | None = None
        self.done = threading.Event()

    def run(self) -> None:
        self.thread = threading.current_thread()
        try:
            if self.action is not None:
                self.action()
        finally:
            self.done.set()


def test_jobs_run_on_a_fixed_set_of_named_threads():
    pool = AppThreads(3, name="test-app")
    try:
        release = threading.Event()
        blocking = [Job(lambda: release.wait(WAIT)) for _ in range(3)]
        for job in blocking:
            pool.submit(job)
        queued = Job()
        pool.submit(queued)
        # Every thread is busy: the fourth job waits for one.
        assert not queued.done.wait(0.2)
        release.set()
        assert queued.done.wait(WAIT)
        for job in blocking:
            assert job.done.wait(WAIT)
        threads = {job.thread for job in [*blocking, queued]}
        assert len(threads) == 3
        for thread in threads:
            assert thread is not None
            assert thread.name.startswith("test-app-")
            assert thread is not threading.current_thread()
    finally:
        pool.stop()


def test_a_job_that_raises_does_not_end_its_thread(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    capture_errors(caplog, monkeypatch)

    def fail() -> None:
        raise SystemExit("even this")

    pool = AppThreads(1)
    try:
        failing = Job(fail)
        pool.submit(failing)
        assert failing.done.wait(WAIT)
        after = Job()
        pool.submit(after)
        assert after.done.wait(WAIT)
        assert after.thread is failing.thread
    finally:
        pool.stop()
    records = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(records) == 1
    assert isinstance(records[0].exc_info[1], SystemExit)  # type: ignore[index]


def test_stop_finishes_queued_jobs_then_ends_the_threads():
    pool = AppThreads(2)
    jobs = [Job() for _ in range(10)]
    for job in jobs:
        pool.submit(job)
    pool.stop()
    assert all(job.done.is_set() for job in jobs)
    assert all(job.thread is not None and not job.thread.is_alive() for job in jobs)


def test_at_least_one_thread():
    with pytest.raises(ValueError):
        AppThreads(0)
