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

.PHONY: help install lint format test test-fast test-deployment test-matrix demo bench clean

help:
	@echo "make demo   — install, seed a SQLite warehouse, run the sync DAG against the emulator"
	@echo "make test   — install, lint (ruff, mypy) and run the whole test suite"
	@echo "make test-deployment — a real Airflow deployment (PostgreSQL) + real browser (Debian chromium)"
	@echo "make lint   — ruff check, ruff format --check, mypy"
	@echo "make bench  — performance comparisons (bench/)"
	@echo "make test-matrix — hook, operators, engine and emulator tests on Airflow 2.11 and 3.0 (+ example DAGs on 3.0)"

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
	$(UV) run --frozen pytest -n $(WORKERS) -m "not deployment" $(PYTEST_ARGS)

test-fast: install
	$(UV) run --frozen pytest -n $(WORKERS) -m "not slow and not contract and not deployment" $(PYTEST_ARGS)

# -- a real deployment and a real browser (tests/deployment) ----------------------------
# airflow api-server, scheduler (LocalExecutor), dag-processor and triggerer as separate
# processes on a fresh PostgreSQL database of METRONOME_TEST_POSTGRES_URL (.ci/run starts
# the server), the emulator as a process, and Debian's chromium (apt-get install chromium;
# APM_CHROMIUM overrides the path) driven by Playwright. One deployment per pytest
# session, so no xdist. APM_UPDATE_SCREENSHOTS=1 rewrites docs/screenshots/*.png;
# APM_KEEP_DEPLOYMENT=1 keeps the temporary AIRFLOW_HOME (logs). -rP prints what passing tests
# print: each concurrency scenario's final counts (desired, active, duplicates, missing).
test-deployment: install
	$(UV) run --frozen pytest -p no:xdist -p no:randomly -rP -m deployment tests/deployment $(PYTEST_ARGS)

# -- compatibility matrix ------------------------------------------------------------
# The locked environment (make test) is the latest Airflow 3.x. These venvs add 2.11
# and 3.0, with the provider installed --no-deps over them. Airflow 3.0 is resolved as
# of its release (--exclude-newer) in place of its constraints file; common-compat
# 1.23.0 (the locked one, which supports 2.11+) and metronome-sdk are added on top.
MATRIX := $(CACHE)/matrix
MATRIX_TESTS := tests/unit tests/emulator tests/integration/operators tests/integration/sync/test_engine.py
# The example DAGs import airflow.sdk, so they run on the 3.0 leg only. All of them pass
# there; the three-day backfill is left out of the matrix for time alone: its nine
# dag.test() runs take ~75 s on 3.0 (whose in-process dag.test() costs ~2 s a task) against
# ~10 s on the locked 3.x, where make test runs it. MATRIX_DAG_TESTS= runs every one.
MATRIX_DAG_TESTS ?= --deselect \
	tests/integration/test_example_dags.py::test_three_day_backfill_with_overlapping_reruns_ends_exact
MATRIX_COMMON := httpx "pydantic>=2.6" pytest pytest-xdist pytest-timeout respx starlette \
	"uvicorn[standard]" openapi-schema-validator pyyaml distro anyio sniffio

$(MATRIX)/af-2.11/.ready: | $(UV)
	rm -rf $(MATRIX)/af-2.11
	$(UV) venv -q --python $(PYTHON) $(MATRIX)/af-2.11
	VIRTUAL_ENV=$(MATRIX)/af-2.11 $(UV) pip install -q "apache-airflow==2.11.2" \
		"apache-airflow-providers-common-compat==1.23.0" apache-airflow-providers-common-sql \
		apache-airflow-providers-sqlite "metronome-sdk==4.12.0" $(MATRIX_COMMON)
	VIRTUAL_ENV=$(MATRIX)/af-2.11 $(UV) pip install -q --no-deps -e .
	@touch $@

$(MATRIX)/af-3.0/.ready: | $(UV)
	rm -rf $(MATRIX)/af-3.0
	$(UV) venv -q --python $(PYTHON) $(MATRIX)/af-3.0
	VIRTUAL_ENV=$(MATRIX)/af-3.0 $(UV) pip install -q --exclude-newer 2025-09-10 "apache-airflow==3.0.6" \
		apache-airflow-providers-common-sql apache-airflow-providers-sqlite $(MATRIX_COMMON)
	VIRTUAL_ENV=$(MATRIX)/af-3.0 $(UV) pip install -q --no-deps \
		"apache-airflow-providers-common-compat==1.23.0" "metronome-sdk==4.12.0"
	VIRTUAL_ENV=$(MATRIX)/af-3.0 $(UV) pip install -q --no-deps -e .
	@touch $@

# $(call matrix_leg,VERSION,PYTEST ARGS)
define matrix_leg
	@echo "== Airflow $$($(MATRIX)/af-$(1)/bin/python -c 'import airflow; print(airflow.__version__)')"
	$(MATRIX)/af-$(1)/bin/python -m pytest -n $(WORKERS) -q -p no:cacheprovider -m "not postgres" $(2)
endef

test-matrix: $(MATRIX)/af-2.11/.ready $(MATRIX)/af-3.0/.ready
	$(call matrix_leg,2.11,$(MATRIX_TESTS))
	$(call matrix_leg,3.0,$(MATRIX_TESTS) tests/integration/test_example_dags.py $(MATRIX_DAG_TESTS))
	@echo "== Airflow latest 3.x: the locked environment, run by make test"

demo: install
	$(UV) run --frozen python -m scripts.demo

# make bench LATENCY_MS="50 20": the emulator latencies (ms). The full syncs against the SDK
# loop run at the first; the example DAG end to end and the partitions on a real deployment at
# each. Writes bench/results/*.json and rewrites the README's Performance table. The partitions
# line needs METRONOME_TEST_POSTGRES_URL (a PostgreSQL server); without it that line is skipped
# and marked not measured. Takes about 25 minutes on 2 cores.
LATENCY_MS ?= 50 20
bench: install
	$(UV) run --frozen python -m bench.run_all --latency-ms $(LATENCY_MS)

clean:
	rm -rf .venv $(CACHE) .pytest_cache .mypy_cache .ruff_cache
