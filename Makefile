# Quickstart: `make run` (set-up + default benchmark), `make test` (set-up + tests).
PYTHON     ?= python3
VENV       ?= .venv
# Overridable torch requirement: the default takes the CPU wheel; e.g. TORCH_SPEC='torch==2.11.0'.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
RUN_ARGS   ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.segbench-installed

.PHONY: run test lint fast setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,openvino,export,ray]'
	touch $@

run: $(STAMP)
	$(BIN)/segbench run $(RUN_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The edit loop: everything but the tests that start processes, compile or train (about 1 minute on 2 cores).
fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not integration" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
