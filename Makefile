# Every target creates .venv when it is missing and installs what it needs.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Python may write its bytecode caches here even where the machine's environment says not to
# (PYTHONDONTWRITEBYTECODE=1): without them, every pytest worker rewrote and compiled every
# test module again, and every server the tests start compiled rootserve again. Measured on
# 2 cores: the compiled suite ran in 166 s instead of 190, collection in 5 s instead of 11.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test lint docs bench perf-docs test-all clean test-ws-conformance fuzz compiled test-compiled

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev]'
	@command -v curl >/dev/null || (apt-get update -qq && apt-get install -y -qq curl)
	@# The deployment files' own checkers (tests/deploy/): nginx -t, systemd-analyze verify.
	@(command -v nginx || test -x /usr/sbin/nginx) >/dev/null || (apt-get update -qq && apt-get install -y -qq nginx-light)
	@command -v systemd-analyze >/dev/null || (apt-get update -qq && apt-get install -y -qq systemd)
	@# The live inspector's test drives Debian's Chromium headless (Playwright, system browser).
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	touch $(STAMP)

# The demo app, with the guide served at /docs/ (the inspector links each message to it).
demo: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --quiet --site-dir build/site
	$(BIN)/rootserve --host 127.0.0.1 --port 8000 --static /docs=build/site

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs fuzz conformance compiled
	$(BIN)/ruff format --check src tests benchmarks docs fuzz conformance compiled
	$(BIN)/mypy --strict src/rootserve
	$(BIN)/lint-imports

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

# The suite twice: against the source (with coverage), then against the mypyc build of the
# hot modules (`make compiled`), the same source compiled.
# Lint and the docs (one core) are built beside the compiled wheel (gcc on the other).
test: $(STAMP)
	$(MAKE) -j2 --no-print-directory lint docs compiled
	$(BIN)/python -m pytest -n 2 --cov --cov-report=term:skip-covered --cov-report=term-missing:skip-covered -q
	ROOTSERVE_BUILD=compiled PYTHONPATH=build/compiled $(BIN)/python -m pytest -n 2 -q
	
# The compiled wheel (compiled/hatch_build.py: the hot modules compiled by mypyc, from the
# same source) in build/wheels/, unpacked in build/compiled/ for the suite to run against.
compiled: $(STAMP)
	rm -rf build/wheels build/compiled
	ROOTSERVE_MYPYC=1 $(BIN)/python -m pip wheel -q --no-build-isolation --no-deps -w build/wheels .
	$(BIN)/python -m zipfile -e build/wheels/rootserve-*.whl build/compiled

test-compiled: compiled
	ROOTSERVE_BUILD=compiled PYTHONPATH=build/compiled $(BIN)/python -m pytest -n 2 -q

bench: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python benchmarks/run.py --wsgi $(BENCH_ARGS)
	$(BIN)/python benchmarks/workers.py $(BENCH_ARGS)
	@command -v h2load >/dev/null || (apt-get update -qq && apt-get install -y -qq nghttp2-client)
	$(BIN)/python benchmarks/h2.py $(BENCH_ARGS)

# The Autobahn Testsuite's WebSocket cases (kosoku, a native runner of its case files) against
# rootserve and uvicorn: minutes, so outside `make test`. Reports go to build/ws-conformance/;
# conformance/README.md explains each NON-STRICT verdict.
test-ws-conformance: $(STAMP)
	$(BIN)/python -m pip install -q kosoku
	$(BIN)/python conformance/run.py $(WS_CONFORMANCE_ARGS)

# The performance page (docs/performance.md and its chart) from a full run of every peer,
# the compiled build beside the source one: about 25 minutes; run it on a quiet machine.
perf-docs: compiled
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/performance.py --compiled $(BENCH_ARGS)

# Coverage-guided fuzzing (atheris, libFuzzer) of the protocol parsers, outside `make test`:
# each harness in fuzz/ for FUZZ_SECONDS; see fuzz/README.md.
FUZZ_SECONDS ?= 120
fuzz: $(STAMP)
	$(BIN)/python -m pip install -q atheris
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS)

# Each interpreter found on PATH or, failing that, among pyenv's installed versions.
test-all:
	for v in 3.11 3.12 3.13; do \
		py=$$(command -v python$$v 2>/dev/null || ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v*/bin/python$$v 2>/dev/null | head -1); \
		[ -n "$$py" ] || { echo "python$$v not found"; exit 1; }; \
		$$py -m venv .venv-$$v && .venv-$$v/bin/python -m pip install -q -e '.[dev]' && \
		.venv-$$v/bin/python -m pytest -n 2 -q || exit 1; \
	done

clean:
	rm -rf $(VENV) .venv-3.* build .coverage* .mypy_cache .ruff_cache
