# airflow-provider-metronome — every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
CACHE := $(CURDIR)/.cache
# Use uv from PATH, else bootstrap it into a private venv (pip install uv).
UV := $(shell command -v uv 2>/dev/null || echo $(CACHE)/uv-venv/bin/uv)
PRISM_VERSION := 5.16.0
PRISM := $(CACHE)/prism/node_modules/.bin/prism
export UV_PYTHON_DOWNLOADS ?= automatic
export PRISM_BIN := $(PRISM)
PYTEST_ARGS ?=
WORKERS ?= 2

.PHONY: help install lint format test test-fast demo bench clean

help:
	@echo "make demo   — install, seed a SQLite warehouse, run the sync DAG against the emulator"
	@echo "make test   — install, lint (ruff, mypy) and run the whole test suite"
	@echo "make lint   — ruff check, ruff format --check, mypy"
	@echo "make bench  — performance comparisons (bench/)"

$(CACHE)/uv-venv/bin/uv:
	$(PYTHON) -m venv $(CACHE)/uv-venv
	$(CACHE)/uv-venv/bin/python -m pip install --quiet --disable-pip-version-check uv

.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	@touch $@

install: .venv/.synced

$(PRISM):
	@command -v npm >/dev/null || { echo "npm is needed for the contract tests (Prism): install Node.js + npm"; exit 1; }
	mkdir -p $(CACHE)/prism
	npm install --silent --no-audit --no-fund --prefix $(CACHE)/prism @stoplight/prism-cli@$(PRISM_VERSION)

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

format: install
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

test: lint $(PRISM)
	$(UV) run --frozen pytest -n $(WORKERS) $(PYTEST_ARGS)

test-fast: install
	$(UV) run --frozen pytest -n $(WORKERS) -m "not slow and not contract" $(PYTEST_ARGS)

demo: install
	$(UV) run --frozen python -m scripts.demo

bench: install
	$(UV) run --frozen python -m bench.run_all
	$(UV) run --frozen python -m bench.emulator_load --request post --seconds 5

clean:
	rm -rf .venv $(CACHE) .pytest_cache .mypy_cache .ruff_cache
