# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m boonb.demo

lint: $(STAMP)
	$(BIN)/ruff check boonb tests benchmarks scripts workflows
	$(BIN)/mypy

test: $(STAMP)
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory lint
