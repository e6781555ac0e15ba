# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup widgets

setup: $(STAMP) widgets

# The widget bundles and the JupyterLab extension; pip's install already built them, this
# rebuilds after a TS change and points the venv's Lab at labextension/'s build output
# (`jupyter labextension develop`: a symlink in place of the copy pip installed), so a
# reload of the Lab page picks the new build up.
WIDGET_SOURCES := $(shell find labextension/src -type f 2>/dev/null) labextension/package.json labextension/build.mjs
NODE_MODULES := labextension/node_modules/.package-lock.json
LABEXT_LINK := $(VENV)/share/jupyter/labextensions/boonb
widgets: boonb/static/traceviewer.js
	@test -L $(LABEXT_LINK) || { out=$$(PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter labextension develop --overwrite . 2>&1) || { echo "$$out"; exit 1; }; }

boonb/static/traceviewer.js: $(WIDGET_SOURCES) $(NODE_MODULES) | $(STAMP)
	cd labextension && BOONB_PYTHON="$(abspath $(BIN)/python)" npm run --silent build

$(NODE_MODULES): labextension/package-lock.json
	cd labextension && npm ci --no-audit --no-fund

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: setup
	$(BIN)/python -m boonb.demo

lint: $(STAMP)
	$(BIN)/ruff check boonb tests benchmarks scripts workflows hatch_build.py
	$(BIN)/mypy
	$(BIN)/lint-imports  # the layers of DESIGN.md section 1 (contracts in pyproject.toml)
	cd labextension && npm run --silent typecheck

# Two pytest workers: the suite's time is mostly waiting on kernels, JupyterLab and
# Chromium. A worker takes a test file, or all the browser tests, at a time (the schedule
# is in tests/conftest.py).
test: setup
	scripts/ensure-chromium  # the browser tests drive Debian's chromium
	$(BIN)/python -m pytest -n 2 --dist loadfile
	$(MAKE) --no-print-directory lint
