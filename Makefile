# Everything installs into .venv at the repository root.
# `make demo` and `make test` are the two commands of the README.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build that lies on the CI disk; the GPU image installs a CUDA build instead.
TORCH ?= torch==2.13.0

.PHONY: setup setup-dev demo test lint format bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)" -e .

setup-dev: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)" -e ".[dev,geoparquet]"

demo: setup
	$(BIN)/stac-coh demo

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup-dev lint
	$(BIN)/pytest

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup-dev
	$(BIN)/python benchmarks/bench_inference.py
