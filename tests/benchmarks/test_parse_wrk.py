"""The benchmark driver reads wrk's report correctly (the numbers it quotes come from here)."""

import pytest
from benchmarks.run import Result, median_result, parse_args, parse_wrk, ratios, render_rounds

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


def test_rounds_are_reported_as_medians() -> None:
    def run(server: str, cpu: float, rps: float) -> Result:
        return Result(server, ok=True, cpu_us_per_req=cpu, requests_per_sec=rps, requests=1)

    rounds = [
        [run("rootserve", 20.0, 50_000), run("uvicorn", 40.0, 25_000)],
        [run("rootserve", 30.0, 33_000), run("uvicorn", 36.0, 27_000)],
        [run("rootserve", 22.0, 45_000), run("uvicorn", 44.0, 22_000)],
    ]
    merged = [median_result(list(runs)) for runs in zip(*rounds, strict=True)]
    assert [(r.server, r.cpu_us_per_req, r.requests_per_sec) for r in merged] == [
        ("rootserve", 22.0, 45_000),
        ("uvicorn", 40.0, 25_000),
    ]
    text = render_rounds([ratios(r) for r in rounds])
    assert text == "rootserve/uvicorn CPU ratio by round: 0.50 0.83 0.50, median 0.50x"


def test_a_round_that_failed_is_left_out_of_the_median() -> None:
    failed = Result("uvicorn", ok=False, error="did not start")
    merged = median_result([Result("uvicorn", ok=True, cpu_us_per_req=40.0), failed])
    assert merged.ok and merged.cpu_us_per_req == 40.0
    assert median_result([failed]) is failed


def test_three_rounds_by_default_and_one_when_quick() -> None:
    assert parse_args([]).rounds == 3
    assert parse_args(["--quick"]).rounds == 1
    assert parse_args(["--quick", "--rounds", "2"]).rounds == 2
    with pytest.raises(SystemExit):
        parse_args(["--rounds", "0"])
