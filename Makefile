# Two entry points for a fresh machine: `make run` and `make test` (see README.md).
# Any supported Python (pyproject.toml's requires-python); .ci/run gives each its own VENV.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The stamp names the interpreter's version: an environment without it (made from another
# PYTHON, or never finished) is made anew, instead of testing on the wrong interpreter.
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)
STAMP := $(VENV)/.installed-$(PYTHON_VERSION)
LINTED := app tests migrations deploy $(wildcard bench)

.PHONY: run test lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(if $(wildcard $(STAMP)),,--clear) $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/stemhook init-env
	$(BIN)/stemhook serve

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

# tests/deploy runs deploy/nginx.conf in a real nginx (Debian's); without one it skips, or fails
# in CI. Installing needs root and the package mirror: anything else only says so.
NGINX := $(firstword $(shell command -v nginx) $(wildcard /usr/sbin/nginx))
# tests/console drives the console in Debian's headless Chromium through its chromedriver; the
# same: installed when missing, else the browser tests skip (fail in CI).
CHROMIUM := $(wildcard /usr/bin/chromium)
CHROMEDRIVER := $(wildcard /usr/bin/chromedriver)

test: lint browser
ifeq ($(NGINX),)
	@(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx) \
	  >/dev/null 2>&1 || echo "nginx could not be installed: tests/deploy will skip (fail in CI)"
endif
	$(BIN)/pytest
	$(BIN)/pytest -n 0 tests/test_openapi.py  # skipped by the xdist workers above (it says why)

.PHONY: browser
browser:
ifeq ($(and $(CHROMIUM),$(CHROMEDRIVER)),)
	@(apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
	  || echo "chromium could not be installed: the browser tests will skip (fail in CI)"
endif

# The console's pages at desktop and phone widths, light and dark, as the browser test sees them
# (README "Console"): look at them after changing a page, and commit them.
.PHONY: screenshots
screenshots: $(STAMP) browser
	STEMHOOK_TEST_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/console/test_browser.py

.PHONY: bench-query
bench-query: $(STAMP)
	$(BIN)/python -m bench.query_api

# Every console page's p50/p99 on the same data, through the real app in-process.
.PHONY: bench-console
bench-console: $(STAMP)
	$(BIN)/python -m bench.console

# Mirroring: result-file throughput, callback latency while a 1 GiB file streams in (~3 min).
# wrk paces the callbacks (installed by `make bench` below, or Debian's package).
.PHONY: bench-mirror
bench-mirror: $(STAMP)
	$(BIN)/python -m bench.mirror

# Polling: polls per second against a fake provider on loopback, and ingest with 10,000 polls due
# against none, side by side (~10 min, SQLite and PostgreSQL); wrk as below.
.PHONY: bench-polling
bench-polling: $(STAMP)
	$(BIN)/python -m bench.polling --backend both

# Ingest throughput/latency beside the references, parser cost, growth, profile, then the
# reliability suite's figures, retention's purge at 2,000,000 deliveries, mirroring, polling,
# and the console's pages at 1,000,000 jobs: BENCHMARKS.md.
# wrk is the load generator (Debian's package, installed like nginx above); py-spy the profiler.
WRK := $(firstword $(shell command -v wrk))

.PHONY: bench
bench: $(STAMP)
ifeq ($(WRK),)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
endif
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.ingest --profile
	$(BIN)/python -m bench.reliability
	$(BIN)/python -m bench.retention
	$(BIN)/python -m bench.mirror --backend both --output BENCHMARKS.md
	$(BIN)/python -m bench.polling --backend both --output BENCHMARKS.md
	$(BIN)/python -m bench.console --output BENCHMARKS.md

clean:
	rm -rf .venv .venv-* $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
