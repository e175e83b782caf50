# finsync — `make run` starts the service on the embedded default; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install dev lint typecheck docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

run: install
	$(BIN)/finsync migrate
	$(BIN)/finsync serve --host $(HOST) --port $(PORT)

lint: dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy
	cd benchmarks && ../$(BIN)/mypy --config-file ../pyproject.toml --ignore-missing-imports *.py  # scripts, not a package
	$(BIN)/lint-imports

# Bytecode caching on for the tests even where the environment turns it off
# (PYTHONDONTWRITEBYTECODE=1): otherwise every xdist worker and every `finsync` subprocess
# compiles the source and re-runs pytest's assertion rewriting, ~10 s of CPU per worker.
# --dist worksteal: an idle worker takes tests queued for a busy one, so the run does not end
# on one worker finishing a long queue (measured: 224-226 s against 240-247 s with the default).
# -n auto is one worker more than the cores (tests/conftest.py: pytest_xdist_auto_num_workers).
test: lint
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -q -n auto --dist worksteal

docs: dev
	$(BIN)/mkdocs build --strict --site-dir var/site

bench: dev
	$(BIN)/python benchmarks/import_ofx.py

clean:
	rm -rf $(VENV) var/site .pytest_cache .mypy_cache .ruff_cache
