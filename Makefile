# The two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision are pinned to the releases that lie on this machine's disk; pip takes them
# locally instead of downloading a CUDA build.
TORCH := torch==2.14.1 torchvision==0.29.1
# pip repeats a harmless warning per package about this machine's local index; hide it.
QUIET_PIP := { grep -v "^WARNING: Location" || true; }

.PHONY: demo test lint bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)
	$(BIN)/pip install -q $(TORCH) 2>&1 | $(QUIET_PIP)

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install -q -e . 2>&1 | $(QUIET_PIP)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -q -e '.[dev]' 2>&1 | $(QUIET_PIP)
	touch $@

demo: $(VENV)/.installed
	$(BIN)/cnnlab demo

test: $(VENV)/.installed-dev
	scripts/system_deps.sh
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(VENV)/.installed-bench: $(VENV)/.installed-dev pyproject.toml
	$(BIN)/pip install -q -e '.[dev,bench]' 2>&1 | $(QUIET_PIP)
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
