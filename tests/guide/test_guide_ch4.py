"""Chapter 4's measurements: the printed table matches the page, and it has the shape the
page explains.

The page shows one recorded run, and its numbers must have the exact shape: a pool of T
threads takes ceil(N / T) delays for N clients, the awaiting event loop one delay, the
blocked event loop N delays. A live run on a busy machine can take a delay or two longer than
that, so for it the test checks what cannot fail by chance: every request waits at least one
delay, so each count is at least its ideal, and with the most clients the awaiting loop beats
the thread pool, which beats the blocked loop. The seconds and the counts are masked when the
live output is compared with the page.
"""

import math
import re

import ch4_crowd
import ch4_measure
import pytest
from guide_support import OUTPUT, normalise, run_example

CELL = re.compile(r"(\d+\.\d\d) s \((\d+) delays?\)")


def masked(text):
    """Mask seconds and counts; a count with more digits also shifts the columns."""
    text = re.sub(r"\(\d+ delays?\)", "(K delays)", normalise(text))
    return re.sub(r" +", " ", text)


def table(text):
    """{clients: (pool, awaits, blocks)}, each a count of delays, from the printed table."""
    rows = {}
    for line in text.splitlines():
        cells = CELL.findall(line)
        if cells:
            rows[int(line.split()[0])] = tuple(int(delays) for _, delays in cells)
    return rows


def ideal(clients):
    """The delays each column takes for `clients` clients on an idle machine."""
    return (math.ceil(clients / ch4_measure.THREADS), 1, clients)


def test_the_recorded_run_on_the_page_has_the_exact_shape():
    rows = table((OUTPUT / "ch4_measure.txt").read_text(encoding="utf-8"))
    assert rows == {clients: ideal(clients) for clients in ch4_measure.CLIENTS}


@pytest.mark.slow
def test_a_live_run_has_that_shape_and_the_page_format():
    printed = run_example("ch4_measure.py", timeout=60)
    assert masked(printed) == masked((OUTPUT / "ch4_measure.txt").read_text(encoding="utf-8"))
    rows = table(printed)
    assert sorted(rows) == sorted(ch4_measure.CLIENTS)
    for clients, counts in rows.items():
        columns = zip(("pool", "awaits", "blocks"), counts, ideal(clients), strict=True)
        for column, measured, least in columns:
            assert measured >= least, f"{column}, {clients} clients"
    pool, awaits, blocks = rows[max(rows)]
    assert awaits < pool < blocks, rows


def test_silent_clients_hold_the_workers_until_a_read_timeout_frees_them():
    printed = run_example("answers/ch4_ex1.py")
    assert normalise(printed) == normalise((OUTPUT / "ch4_ex1.txt").read_text(encoding="utf-8"))
    waited = float(re.search(r"answered after (\d+\.\d\d) s", printed)[1])
    assert 0.3 <= waited < 1.0  # at least the 0.3 s read timeout, and before the client quits


def test_a_thread_pool_keeps_the_loop_free_for_other_requests():
    printed = run_example("answers/ch4_ex2.py")
    assert masked(printed) == masked((OUTPUT / "ch4_ex2.txt").read_text(encoding="utf-8"))
    slow = int(re.search(r"\((\d+) delays\)", printed)[1])
    fast = float(re.search(r"sent with them: answered after (\d+\.\d\d) s", printed)[1])
    assert slow >= 4  # 16 requests through 4 threads
    assert fast < 2 * 0.1  # not queued behind the slow ones, which take 4 delays or more


def test_each_recorded_count_is_its_seconds_in_delays():
    # An edited count, or edited seconds, no longer match: the script derives one from the other.
    for seconds, delays in CELL.findall((OUTPUT / "ch4_measure.txt").read_text(encoding="utf-8")):
        assert int(delays) == int(float(seconds) / ch4_measure.DELAY + 0.05), (seconds, delays)


# -- ch4_crowd.py: a thousand clients at once, and a thousand idle connections
BUSY = re.compile(r"^ +(.+?) +(\d+\.\d\d) s \((\d+) delays\)$", re.MULTILINE)
IDLE = re.compile(r"^ +(.+?) +(\d+) more threads +(\d+\.\d) MiB +(\d+\.\d) KiB each$", re.MULTILINE)


def crowd(text):
    """({title: (seconds, delays)}, {title: (threads, MiB, KiB each)}) from the printed text."""
    busy = {title: (float(s), int(d)) for title, s, d in BUSY.findall(text)}
    idle = {title: (int(t), float(m), float(k)) for title, t, m, k in IDLE.findall(text)}
    return busy, idle


def check_crowd(text):
    """What the page says of ch4_crowd's numbers, and that they agree with each other."""
    busy, idle = crowd(text)
    threads, asyncio_ = ch4_crowd.KINDS["threads"], ch4_crowd.KINDS["asyncio"]
    assert set(busy) == set(idle) == {threads, asyncio_}
    for seconds, delays in busy.values():
        assert seconds >= ch4_crowd.DELAY  # every request waits one delay at least
        assert delays == int(seconds / ch4_crowd.DELAY + 0.05), (seconds, delays)
    for _, mib, each in idle.values():
        # MiB is rounded to 0.1 (51 KiB over all connections), KiB each to 0.1.
        assert abs(mib * 1024 / ch4_crowd.CLIENTS - each) <= 0.11, (mib, each)
    assert busy[asyncio_][0] < busy[threads][0]
    assert idle[threads][0] >= ch4_crowd.CLIENTS  # a thread for each idle connection
    assert idle[asyncio_][0] == 0  # and none for a coroutine
    assert idle[asyncio_][2] < idle[threads][2]


def test_the_recorded_crowd_run_agrees_with_itself_and_the_page():
    check_crowd((OUTPUT / "ch4_crowd.txt").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_a_live_crowd_run_has_the_page_format_and_the_same_shape():
    printed = run_example("ch4_crowd.py", timeout=60)

    def shape(text):
        return re.sub(r" +", " ", re.sub(r"\d+(\.\d+)?", "N", text))

    assert shape(printed) == shape((OUTPUT / "ch4_crowd.txt").read_text(encoding="utf-8"))
    check_crowd(printed)
