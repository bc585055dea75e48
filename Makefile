# Everything installs into .venv at the repository root.
# `make demo` and `make test` are the two commands of the README.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build that lies on the CI disk; the GPU image installs a CUDA build instead.
TORCH ?= torch==2.13.0
# Every version the tests run with; the Dockerfile installs the same (see constraints.txt).
CONSTRAINTS ?= constraints.txt

.PHONY: setup setup-dev demo test lint typecheck format bench constraints

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) "$(TORCH)" -e .

setup-dev: $(BIN)/python
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) "$(TORCH)" -e ".[dev,geoparquet]"

demo: setup
	$(BIN)/stac-coh demo

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy stac_coh

test: setup-dev lint typecheck
	$(BIN)/pytest

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup-dev
	$(BIN)/python benchmarks/bench_inference.py

# Pin what the venv holds now (after `make test` passed with it); torch without its
# local label (+cpu), so the CUDA build of the same version satisfies it too.
constraints:
	{ sed -n '1,3p' $(CONSTRAINTS); $(BIN)/pip freeze --exclude-editable \
	  | sed -E 's/^torch==([0-9.]+)\+[a-z0-9]+$$/torch==\1/'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
