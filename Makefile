# spoolscribe: every entry point. CI calls `make test` through .ci/run.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
SPOOL_ROOT ?= ./spool
PYTEST_ARGS ?=

.PHONY: help setup run test test-all lint reliability bench bench-quick clean

help:
	@echo "make run     set up and run the daemon on $(SPOOL_ROOT) (drop audio into $(SPOOL_ROOT)/inbox/)"
	@echo "make test    set up and run the test suite"
	@echo "make setup   create .venv from uv.lock (idempotent); the CLI is .venv/bin/spool"
	@echo "make lint    ruff + mypy"
	@echo "make reliability   fault-injection soak (long), writes docs/reliability.md"
	@echo "make bench   benchmarks, writes docs/performance.md (bench-quick: smoke run)"

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

reliability: setup
	rm -f bench/results/reliability.jsonl
	$(VENV)/bin/python -m pytest -m soak tests/reliability --timeout=7200 $(PYTEST_ARGS); status=$$?; \
	  $(VENV)/bin/python -m bench.reliability_report; exit $$status

bench: setup
	$(VENV)/bin/python -m bench.run

bench-quick: setup
	$(VENV)/bin/python -m bench.run --quick

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
