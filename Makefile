# spoolscribe: every entry point. CI calls `make test` through .ci/run.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
SPOOL_ROOT ?= ./spool
PYTEST_ARGS ?=

.PHONY: help setup run test test-all lint fuzz reliability reliability-rerun bench bench-throughput bench-quick bench-memory quality clean

help:
	@echo "make run     set up and run the daemon on $(SPOOL_ROOT) (drop audio into $(SPOOL_ROOT)/inbox/)"
	@echo "make test    set up and run the test suite"
	@echo "make setup   create .venv from uv.lock (idempotent); the CLI is .venv/bin/spool"
	@echo "make lint    ruff + mypy + the layout rules (tests/unit/test_architecture.py)"
	@echo "make fuzz   the property/fuzz tests at 20x their make-test size (SPOOL_FUZZ_SCALE)"
	@echo "make reliability   fuzz at 20x, then the fault-injection soak (long), writes docs/reliability.md"
	@echo "make reliability-rerun ROWS='r29 or r31'   only those rows again; the others are kept in docs/reliability.md"
	@echo "make bench   benchmarks, writes docs/performance.md (bench-quick: smoke run)"
	@echo "make bench-throughput   a backlog and one long file: plain layouts beside the spool (issue 17)"
	@echo "make bench-memory   a worker's peak RSS on a 5 min vs a 2 h input, into docs/performance.md"
	@echo "make quality   long-form corpora through the spool's and the engines' own defaults, writes docs/quality.md"

# uv from PyPI into a private tools venv when the machine has none.
$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	@touch $@

setup: $(VENV)/.synced

run: setup
	$(VENV)/bin/spool run --root $(SPOOL_ROOT)

test: setup
	$(VENV)/bin/python -m pytest -m "not soak" $(PYTEST_ARGS)

test-all: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit/test_architecture.py

# The fuzz tests of `make test`, 20 times larger (SPOOL_FUZZ_SCALE=1 is the make test size).
FUZZ_TESTS := tests/unit/test_config_fuzz.py tests/cli/test_cli_fuzz.py tests/spool/test_handover.py tests/fuzz
SPOOL_FUZZ_SCALE ?= 20

fuzz: setup
	SPOOL_FUZZ_SCALE=$(SPOOL_FUZZ_SCALE) $(VENV)/bin/python -m pytest $(FUZZ_TESTS) --timeout=3600 $(PYTEST_ARGS)

reliability: setup
	rm -f bench/results/reliability.jsonl
	SPOOL_FUZZ_SCALE=$(SPOOL_FUZZ_SCALE) $(VENV)/bin/python -m pytest $(FUZZ_TESTS) --timeout=3600 $(PYTEST_ARGS); fuzz=$$?; \
	$(VENV)/bin/python -m pytest -m soak tests/reliability --timeout=7200 $(PYTEST_ARGS); status=$$?; \
	  $(VENV)/bin/python -m bench.reliability_report; [ $$fuzz -eq 0 ] && exit $$status || exit $$fuzz

# Some rows again (e.g. ROWS='r29 or r31'); the rows not re-run are carried over into docs/reliability.md.
ROWS ?= r26 or r27 or r28 or r29 or r30 or r31
reliability-rerun: setup
	SPOOL_FUZZ_SCALE=$(SPOOL_FUZZ_SCALE) $(VENV)/bin/python -m pytest -m soak tests/reliability -k "$(ROWS)" --timeout=7200 $(PYTEST_ARGS); status=$$?; \
	  $(VENV)/bin/python -m bench.reliability_report --keep; exit $$status

bench: setup
	$(VENV)/bin/python -m bench.run
	$(VENV)/bin/python -m bench.throughput

bench-throughput: setup
	$(VENV)/bin/python -m bench.throughput

bench-quick: setup
	$(VENV)/bin/python -m bench.run --quick

bench-memory: setup
	$(VENV)/bin/python -m bench.memory

quality: setup
	$(VENV)/bin/python -m bench.quality

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
