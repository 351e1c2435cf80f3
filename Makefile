# Quickstart: `make run` (set-up + default benchmark), `make test` (set-up + tests).
# What each set-up installs from where (this machine, plain Linux, macOS, CUDA): docs/install.md.
PYTHON     ?= python3
VENV       ?= .venv
# Overridable torch requirement, e.g. TORCH_SPEC='torch==2.11.0'; which build it gets depends on TORCH_INDEX.
TORCH_SPEC ?= torch==2.13.0
# The index torch alone is installed from (`pip install --index-url`); empty: pip's own configuration.
# PyPI's Linux x86_64 torch is the CUDA build (several GB of nvidia-* packages), so on an ordinary Linux
# machine set TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU wheel; for one CUDA version,
# https://download.pytorch.org/whl/cu128 (say). Empty is right on macOS (PyPI's wheels have no CUDA) and
# where pip is configured with a local CPU wheel (find-links), as on segbench's development machines.
TORCH_INDEX ?=
# The ONNX Runtime build: cpu (the `onnxruntime` package) or gpu (`onnxruntime-gpu`, CUDA). They install
# the same module, so exactly one is kept; the choice is remembered in the virtual environment.
ORT_INSTALLED := $(shell cat $(VENV)/.segbench-installed 2>/dev/null)
ORT        ?= $(or $(ORT_INSTALLED),cpu)
PYTEST_ARGS ?=
RUN_ARGS   ?=

ifeq ($(filter cpu gpu,$(ORT)),)
$(error ORT is cpu or gpu, not '$(ORT)')
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.segbench-installed
TORCH_INDEX_ARG := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
ORT_OTHER := $(if $(filter gpu,$(ORT)),onnxruntime,onnxruntime-gpu)

.PHONY: run test lint fast setup clean wheel-check ort-changed

setup: $(STAMP)

# Re-run when the ONNX Runtime build asked for is not the one installed.
$(STAMP): pyproject.toml constraints.txt Makefile $(if $(filter-out $(ORT_INSTALLED),$(ORT)),ort-changed)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_INDEX_ARG) "$(TORCH_SPEC)"
	if $(BIN)/python -m pip show -q $(ORT_OTHER) 2>/dev/null; then \
		$(BIN)/python -m pip uninstall -y -q onnxruntime onnxruntime-gpu; fi
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,openvino,export,ray,transformers,$(ORT)]'
	echo $(ORT) > $@

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

# The package as a user gets it: build the wheel into dist/ (from scratch: setuptools' build/ keeps
# deleted modules), install it with torch and the ONNX Runtime build alone (no other extra) into a new
# virtual environment, and run the installed `segbench` outside the checkout (`list suites` reads the
# suites/*.toml package data) and import its Python API.
wheel-check:
	rm -rf build dist/segbench-*.whl
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install -q --upgrade pip; \
	"$$tmp/venv/bin/python" -m pip wheel -q --no-deps -w dist .; \
	wheel=$$(ls "$(CURDIR)"/dist/segbench-*-py3-none-any.whl); \
	"$$tmp/venv/bin/python" -m pip install -q $(TORCH_INDEX_ARG) "$(TORCH_SPEC)"; \
	"$$tmp/venv/bin/python" -m pip install -q -c "$(CURDIR)/constraints.txt" "$$wheel[$(ORT)]"; \
	cd "$$tmp"; \
	env -u PYTHONPATH venv/bin/segbench --version; \
	env -u PYTHONPATH venv/bin/segbench list backends; \
	env -u PYTHONPATH venv/bin/segbench list suites; \
	env -u PYTHONPATH venv/bin/python -c "import segbench; print('import segbench:', ', '.join(segbench.__all__))"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
