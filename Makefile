PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp

.PHONY: run test test-fast lint typecheck fuzz bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP)-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(STAMP)-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@ $(STAMP)-run

## make run: create .venv, install, serve the demo workflows and the example LangGraph project (examples/agent) on http://127.0.0.1:8123
run: $(STAMP)-run
	$(BIN)/runplane serve runplane.demo:app --config examples/agent/langgraph.json --database sqlite:///./runplane.db

## make test: install dev dependencies, lint, check types, run the whole suite
test: $(STAMP)-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/pytest

## make test-fast: the unit tests and the engine tests on SQLite only, in seconds
test-fast: $(STAMP)-dev
	$(BIN)/pytest -q tests/unit tests/engine --store sqlite

lint: $(STAMP)-dev
	$(BIN)/ruff check src tests benchmarks examples

## make typecheck: check the types of src/ with mypy (settings in pyproject.toml)
typecheck: $(STAMP)-dev
	$(BIN)/mypy

## make fuzz: the fuzz test of the HTTP API, longer than in make test (RUNPLANE_FUZZ_EXAMPLES)
fuzz: $(STAMP)-dev
	RUNPLANE_FUZZ_EXAMPLES=$${RUNPLANE_FUZZ_EXAMPLES:-200} $(BIN)/pytest tests/acceptance/http/test_fuzz.py --timeout 3600

bench: $(STAMP)-run
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
