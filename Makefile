# Aikeedo — developer commands. `make run` and `make test` work on a fresh clone with only
# Python 3.11 installed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# axe-core for the browser tests' accessibility scans (package.json), installed by npm ci.
NODE_STAMP := node_modules/.installed
# The browser tests (tests/e2e) drive this Chromium (Debian's `chromium` package); without it
# they are skipped with one reason.
E2E_CHROMIUM ?= /usr/bin/chromium
export E2E_CHROMIUM
HOST ?= 127.0.0.1
PORT ?= 8000

.DEFAULT_GOAL := help
.PHONY: help install run test lint format migrate worker bench clean

help:
	@echo "make run     install (first time), migrate, seed demo data, serve http://$(HOST):$(PORT)"
	@echo "make test    run the whole test suite (DATABASE_URL / REDIS_URL if set; browser tests need /usr/bin/chromium)"
	@echo "make worker  Celery worker + beat against REDIS_URL"
	@echo "make lint    ruff, djlint, mypy, import layers (lint-imports)"
	@echo "make format  ruff format + fixes, djlint reformat"
	@echo "make migrate apply database migrations"
	@echo "make bench   run the benchmarks under bench/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[dev]"
	@touch $(STAMP)

# npm is optional: without it only the accessibility scans of tests/e2e are skipped.
$(NODE_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "npm not found: skipping node_modules/ (axe-core); the e2e accessibility scans will be skipped."; \
	fi

install: $(STAMP) $(NODE_STAMP)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/python manage.py seed_demo
	@echo "Serving on http://$(HOST):$(PORT)  (HTTP + WebSocket, Ctrl-C to stop)"
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: $(STAMP) $(NODE_STAMP)
	@test -x "$(E2E_CHROMIUM)" || echo "e2e: no Chromium at $(E2E_CHROMIUM): the browser tests (tests/e2e) will be skipped (apt-get install chromium)."
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/djlint templates --lint
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/djlint templates --reformat --quiet || true

worker: $(STAMP)
	@test -n "$$REDIS_URL" || { echo "Set REDIS_URL (e.g. redis://127.0.0.1:6379/0) to run a worker."; exit 1; }
	$(BIN)/celery -A aikeedo worker --beat --loglevel=INFO --concurrency=2

# The credits ledger benchmark needs PostgreSQL (DATABASE_URL, else a local aikeedo_bench
# database it creates); without one it prints a SKIP line and succeeds.
bench: $(STAMP)
	$(BIN)/python -m pytest bench -p no:cacheprovider -q
	$(BIN)/python bench/credits_ledger.py
	$(BIN)/python bench/streaming.py --concurrency 1,100 --single-rounds 5

clean:
	rm -rf $(VENV) staticfiles .test-media .pytest_cache .mypy_cache .ruff_cache
