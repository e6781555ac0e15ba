# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup widgets

setup: $(STAMP) widgets

# The widget bundles; pip's install already built them, this rebuilds after a TS change.
WIDGET_SOURCES := $(shell find labextension/src -type f 2>/dev/null) labextension/package.json
widgets: boonb/static/traceviewer.js

boonb/static/traceviewer.js: $(WIDGET_SOURCES) | $(STAMP)
	cd labextension && npm run --silent build

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

test: setup
	scripts/ensure-chromium  # the browser tests drive Debian's chromium
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory lint
