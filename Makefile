# Microtome — two commands: `make run` and `make test`.
# Everything else the project needs is installed by these targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

HOST ?= 127.0.0.1
PORT ?= 8000
SAMPLES ?= $(if $(wildcard ../shared/testdata),../shared/testdata,)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# `make test` runs on this many pytest-xdist workers, a test file's tests together on
# one worker in file order (--dist loadfile: module fixtures built once; some tests
# build on the ones before them); PYTEST_WORKERS=0 runs everything in this process.
PYTEST_WORKERS ?= 2

# A Python >= 3.12: python3.12/python3.13 on PATH (pyenv shims honour
# .python-version), then plain python3, then pyenv's own versions.
FIND_PYTHON = for c in python3.12 python3.13 python3 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python 2>/dev/null); do \
	  p=$$(command -v $$c 2>/dev/null) || continue; \
	  $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; \
	done

.PHONY: help run serve test lint lock bench bench-quick clean samples deps chromium haproxy

help:
	@echo "make run    - set everything up, convert the sample slides, serve http://$(HOST):$(PORT)"
	@echo "make test   - install what is missing and run the whole test suite"
	@echo "make lint   - ruff + mypy + import layers"
	@echo "make lock   - re-resolve requirements-dev.lock after a dependency change"
	@echo "make bench  - benchmarks against peers (writes bench/RESULTS.md); make bench-quick: < 2 min guard"
	@echo "make clean  - remove the virtualenv, node modules and var/ (database, images)"

$(VENV)/.installed: pyproject.toml client/pyproject.toml requirements-dev.lock
	@py=$$($(FIND_PYTHON)); \
	if [ -z "$$py" ]; then \
	  echo "error: Python 3.12 or newer is required and none was found." >&2; \
	  echo "       Install it (Debian/Ubuntu: apt install python3.12 python3.12-venv; or pyenv install 3.12) and re-run." >&2; \
	  exit 1; fi; \
	[ -x $(PY) ] || $$py -m venv $(VENV) || { echo "error: could not create $(VENV) with $$py (missing python3-venv?)" >&2; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	# Exact versions from the lock file, then our own packages on top of them.
	$(PY) -m pip install --quiet -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e . -e ./client
	@touch $@

# Re-resolve requirements-dev.lock after changing dependencies in either pyproject.toml.
lock: $(VENV)/.installed
	$(PY) -m pip install --quiet uv
	UV_CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/uv pip compile pyproject.toml client/pyproject.toml --extra dev --extra all \
	  --python-version 3.12 --python-platform x86_64-manylinux_2_28 -o requirements-dev.lock

frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm (Node.js >= 18) is required. Debian/Ubuntu: apt install nodejs npm" >&2; exit 1; }
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

frontend/static/vendor/.built: frontend/node_modules/.installed frontend/build.mjs frontend/package-lock.json
	cd frontend && npm run --silent build
	@touch $@

deps: $(VENV)/.installed frontend/static/vendor/.built

# Debian's chromium for the browser tests (Playwright drives it; it never downloads browsers).
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Debian's HAProxy: the load balancer of the scale-out tests (two `serve` and two
# `tiles` processes behind it) and of the 1-vs-2 tile processes benchmark.
haproxy:
	@command -v haproxy >/dev/null || { \
	  echo "installing Debian haproxy for the load-balancer tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq haproxy >/dev/null; }

samples: deps
	@$(PY) -m microtome.samples $(SAMPLES)

run: deps samples
	@$(PY) -m microtome serve --host $(HOST) --port $(PORT)

test: deps chromium haproxy
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy microtome bench client/microtome_client
	$(VENV)/bin/lint-imports

# Peers' Python packages (large_image) come from the `bench` extra; Debian's
# vips, lighttpd and iipimage-server are installed by the benchmark itself.
$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $@

bench: deps haproxy $(VENV)/.bench-installed
	$(PY) -m bench

bench-quick: deps $(VENV)/.bench-installed
	$(PY) -m bench --quick

clean:
	rm -rf $(VENV) frontend/node_modules frontend/static/vendor var tests/artifacts .pytest_cache .mypy_cache .ruff_cache
