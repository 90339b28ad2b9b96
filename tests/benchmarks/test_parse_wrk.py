"""The benchmark driver reads wrk's report correctly (the numbers it quotes come from here)."""

import pytest
from benchmarks.run import parse_wrk

REPORT = """\
Running 8s test @ http://127.0.0.1:40123/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.32ms  310.12us   9.87ms   88.10%
    Req/Sec    48.61k     1.20k   50.32k    81.25%
  Latency Distribution
     50%    1.20ms
     75%    1.41ms
     90%    1.66ms
     99%    3.60ms
  387245 requests in 8.00s, 53.18MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  48405.12
Transfer/sec:      6.65MB
"""


def test_parse_wrk_reads_totals_latency_and_errors() -> None:
    result = parse_wrk(REPORT)
    assert result["requests"] == 387245
    assert result["duration_s"] == pytest.approx(8.0)
    assert result["requests_per_sec"] == pytest.approx(48405.12)
    assert result["p50_ms"] == pytest.approx(1.20)
    assert result["p99_ms"] == pytest.approx(3.60)
    assert result["socket_errors"] == {"connect": 0, "read": 3, "write": 0, "timeout": 1}
    assert result["errors"] == 4
    assert result["non_2xx_3xx"] == 7


def test_parse_wrk_microsecond_latency_and_no_error_lines() -> None:
    text = REPORT.replace("1.20ms", "950.00us").split("  Socket errors")[0] + (
        "Requests/sec:  48405.12\n"
    )
    result = parse_wrk(text)
    assert result["p50_ms"] == pytest.approx(0.95)
    assert result["errors"] == 0
    assert result["non_2xx_3xx"] == 0


def test_parse_wrk_refuses_what_is_not_wrk_output() -> None:
    with pytest.raises(ValueError, match="not wrk output"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")
