# `make test` and `make run` are the two set-up commands the README promises:
# each creates .venv on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test run lint types pytest bench clean

test: lint types pytest

$(STAMP): pyproject.toml
	$(PYTHON) sharpmld/cli/preflight.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e '.[dev,web]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check sharpmld tests bench
	$(BIN)/ruff format --check sharpmld tests bench
	$(BIN)/lint-imports

types: $(STAMP)
	$(BIN)/mypy

# Two processes (pytest-xdist): the end-to-end tests spend much of their time waiting on
# the daemons they run, so two at once fit this 2-core machine; the slowest 20 are listed.
pytest: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist worksteal --durations=20

run: $(STAMP)
	$(BIN)/sharpmld init --if-missing
	$(BIN)/sharpmld run

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
