"""Chapter 4's measurements: the printed table matches the page, and it has the shape the
page explains. The timings are masked for the comparison; the shape is checked on numbers."""

import math
import re

import ch4_measure
import pytest
from guide_support import OUTPUT, normalise, run_example

CELL = re.compile(r"(\d+\.\d\d) s \((\d+) delays?\)")


def table(text):
    """{clients: [(seconds, delays) for each column]} from the printed table."""
    rows = {}
    for line in text.splitlines():
        cells = CELL.findall(line)
        if cells:
            rows[int(line.split()[0])] = [(float(s), int(d)) for s, d in cells]
    return rows


def check_shape(rows):
    delay, threads = ch4_measure.DELAY, ch4_measure.THREADS
    assert sorted(rows) == sorted(ch4_measure.CLIENTS)
    for clients, ((_, pool), (awaits_s, awaits), (_, blocks)) in rows.items():
        # A pool of worker threads answers `threads` clients per delay.
        assert pool == math.ceil(clients / threads), f"WSGI pool, {clients} clients"
        # The event loop waits for all clients at once: one delay, however many there are.
        assert awaits == 1 and awaits_s < 2 * delay, f"asyncio awaiting, {clients} clients"
        # A blocking call stops the loop, so the clients are answered one after another.
        assert blocks == clients, f"asyncio blocking, {clients} clients"


@pytest.mark.slow
def test_the_measurement_has_the_shape_the_page_explains():
    printed = run_example("ch4_measure.py", timeout=60)
    check_shape(table(printed))
    shown = (OUTPUT / "ch4_measure.txt").read_text(encoding="utf-8")
    assert normalise(printed) == normalise(shown)


def test_the_recorded_run_on_the_page_has_that_shape_too():
    check_shape(table((OUTPUT / "ch4_measure.txt").read_text(encoding="utf-8")))


def test_silent_clients_hold_the_workers_until_a_read_timeout_frees_them():
    printed = run_example("answers/ch4_ex1.py")
    assert normalise(printed) == normalise((OUTPUT / "ch4_ex1.txt").read_text(encoding="utf-8"))
    waited = float(re.search(r"answered after (\d+\.\d\d) s", printed)[1])
    assert 0.3 <= waited < 1.0  # at least the 0.3 s read timeout, well before the client quits


def test_a_thread_pool_keeps_the_loop_free_for_other_requests():
    printed = run_example("answers/ch4_ex2.py")
    assert normalise(printed) == normalise((OUTPUT / "ch4_ex2.txt").read_text(encoding="utf-8"))
    fast = float(
        re.search(r"fast request sent with them: answered after (\d+\.\d\d) s", printed)[1]
    )
    assert fast < 0.1  # answered while all four pool threads were still busy
