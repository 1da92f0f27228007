# hotline — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit vectors bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hotline demo

lint: $(STAMP)
	$(BIN)/ruff check hotline tests
	$(BIN)/ruff format --check hotline tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

vectors: $(STAMP)
	$(BIN)/python -m tests.vectors.generate

bench: $(STAMP)
	$(BIN)/hotline bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
