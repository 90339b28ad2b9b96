"""benchmarks/h2.py: h2load's report read right, each server asked for HTTP/2 on plain TCP."""

import pytest
from benchmarks.h2 import SCENARIO, command, h2load_argv, parse_h2load
from benchmarks.run import Settings

REPORT = """\
starting benchmark...
finished in 3.00s, 23223.67 req/s, 1.01MB/s
requests: 69671 total, 69735 started, 69671 done, 69663 succeeded, 8 failed, 0 errored, 0 timeout
status codes: 69660 2xx, 0 3xx, 3 4xx, 0 5xx
traffic: 3.03MB (3180134) total, 339.81KB (347970) headers (space savings 94.92%), 882.01KB
                     min         max         mean         sd        +/- sd
time for request:      224us     10.41ms      2.68ms       836us    70.49%
time for connect:      162us       225us       189us        27us    75.00%
"""


def test_parse_h2load_reads_rates_counts_and_the_mean() -> None:
    stats = parse_h2load(REPORT)
    assert stats == {
        "duration_s": 3.0, "requests_per_sec": 23223.67, "done": 69671, "succeeded": 69663,
        "failed": 8, "non_2xx_3xx": 3, "ok_2xx": 69660, "mean_ms": 2.68,
    }  # fmt: skip
    short = REPORT.replace("finished in 3.00s", "finished in 158.58ms").replace("2.68ms", "836us")
    assert parse_h2load(short)["duration_s"] == pytest.approx(0.15858)
    assert parse_h2load(short)["mean_ms"] == pytest.approx(0.836)
    with pytest.raises(ValueError, match="not an h2load report"):
        parse_h2load("connect to 127.0.0.1 failed")


def test_each_server_is_asked_for_http2_and_h2load_spreads_the_streams() -> None:
    argv = {name: command(name, 8123) for name in SCENARIO.servers(all_peers=False)}
    assert argv["rootserve"][1:3] == ["--http", "auto"]
    assert argv["granian"][1:3] == ["--http", "2"]
    assert argv["granian"][-1] == SCENARIO.app and argv["hypercorn"][1] == SCENARIO.app
    settings = Settings(duration=3, warmup=1, connections=64, server_cpu=0, client_cpu=1)
    load = h2load_argv(8123, settings, 3)
    assert load[:3] == ["taskset", "-c", "1"]
    assert load[3:] == ["h2load", "-D", "3", "-c", "4", "-m", "16", "-t", "1",
                        "http://127.0.0.1:8123/"]  # fmt: skip
