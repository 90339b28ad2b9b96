"""The multi-worker benchmark builds its commands, counts ready workers and divides correctly."""

import pytest
from benchmarks.run import Result
from benchmarks.workers import (
    VARIANTS,
    command,
    main,
    pair_ratios,
    ready_workers,
    render_ratios,
    set_option,
)

BY_LABEL = {v.label: v for v in VARIANTS}


def test_set_option_replaces_a_value_or_inserts_after_the_program() -> None:
    argv = ["granian", "--workers", "1", "--log-level", "warning", "app:app"]
    assert set_option(argv, "--workers", "2") == [
        "granian", "--workers", "2", "--log-level", "warning", "app:app",
    ]  # fmt: skip
    assert set_option(argv, "--runtime-threads", "1")[:3] == ["granian", "--runtime-threads", "1"]
    assert set_option(argv, "--runtime-threads", "1")[-1] == "app:app"
    assert argv[2] == "1"  # the input is not changed


def test_commands_ask_for_the_workers_and_info_logs() -> None:
    for variant in VARIANTS:
        argv = command(variant, 8123)
        assert argv[argv.index("--workers") + 1] == str(variant.workers)
        assert argv[argv.index("--log-level") + 1] == "info"
        assert argv.count("--workers") == 1
        assert "8123" in argv
    granian = command(BY_LABEL["granian -w 2"], 8123)
    assert granian[granian.index("--runtime-threads") + 1] == "1"
    assert granian[-1] == "benchmarks.apps.asgi_hello:app"


def test_ready_workers_counts_distinct_workers_or_lines() -> None:
    rootserve = BY_LABEL["rootserve -w 2"].ready_line
    log = "INFO: Supervisor 10: 2 worker(s)\nINFO: Worker 11 ready\nINFO: [12] Listening\n"
    assert ready_workers(log, rootserve) == 1
    assert ready_workers(log + "INFO: Worker 12 ready\nINFO: Worker 12 ready\n", rootserve) == 2
    assert ready_workers(log + "INFO: Worker 12 ready (uvloop, httptools)\n", rootserve) == 2
    uvicorn = BY_LABEL["uvicorn -w 2"].ready_line
    line = "INFO:     Application startup complete.\n"
    assert ready_workers("INFO:     Waiting for application startup.\n" + line, uvicorn) == 1
    assert ready_workers(line * 2, uvicorn) == 2
    granian = BY_LABEL["granian -w 2"].ready_line
    spawning = "[INFO] Spawning worker-1 with PID: 5\n[INFO] Spawning worker-2 with PID: 6\n"
    assert ready_workers(spawning, granian) == 0
    assert (
        ready_workers(spawning + "[INFO] Started worker-2\n[INFO] Started worker-1\n", granian) == 2
    )


def _run(server: str, rps: float, cpu: float) -> Result:
    return Result(server, ok=True, requests=1, requests_per_sec=rps, cpu_us_per_req=cpu)


def test_pair_ratios_put_rootserve_w2_over_each_baseline() -> None:
    results = [
        _run("rootserve -w 1", 20_000, 50.0),
        _run("rootserve -w 2", 30_000, 40.0),
        _run("uvicorn -w 2", 15_000, 80.0),
        Result("granian -w 2", error="not installed"),
    ]
    ratios = pair_ratios(results)
    assert ratios["rootserve -w 2 / rootserve -w 1"] == pytest.approx(
        {"req_per_sec": 1.5, "cpu_per_req": 0.8}
    )
    assert ratios["rootserve -w 2 / uvicorn -w 2"] == pytest.approx(
        {"req_per_sec": 2.0, "cpu_per_req": 0.5}
    )
    assert ratios["rootserve -w 2 / granian -w 2"] == {"req_per_sec": None, "cpu_per_req": None}


def test_render_ratios_shows_medians_and_each_round() -> None:
    medians = {"a / b": {"req_per_sec": 1.5, "cpu_per_req": 0.8}}
    rounds = [
        {"a / b": {"req_per_sec": 1.4, "cpu_per_req": 0.8}},
        {"a / b": {"req_per_sec": None, "cpu_per_req": None}},
    ]
    assert render_ratios(medians, rounds) == (
        "a / b  req/s 1.50x, CPU/req 0.80x  (req/s by round: 1.40 -, median 1.40x)"
    )
    assert render_ratios(medians, rounds[:1]) == "a / b  req/s 1.50x, CPU/req 0.80x"


def test_only_skips_the_workers_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--only", "asgi-hello"]) == 0
    assert "skipped" in capsys.readouterr().err
