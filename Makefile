# The two commands: `make run` and `make test`. Everything else is a helper they call.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format tools bench clean sync-chart-assets screenshots

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

## make run: set up everything on a fresh machine and run the control plane (Ctrl-C stops it all).
run: $(STAMP)
	$(PY) scripts/run.py

## make test: lint, then the whole suite (SQLite by default; DATABASE_URL=postgres://... for PostgreSQL).
test: $(STAMP) tools lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_SECRET_KEY=lint $(PY) manage.py check --fail-level WARNING
	DJANGO_SECRET_KEY=lint $(PY) manage.py makemigrations --check --dry-run

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## make tools: the real outside tools the tests drive (Prometheus/promtool, Chromium, wrk, helm).
tools:
	bash scripts/install-tools.sh

bench: $(STAMP) tools
	$(PY) bench/run.py

## make sync-chart-assets: copy monitoring/ rules and dashboards into the chart (a test fails on drift).
sync-chart-assets:
	bash scripts/sync-chart-assets.sh

## make screenshots: rerun the browser test and refresh docs/screenshots/.
screenshots: $(STAMP) tools
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/routing/test_browser.py -q

clean:
	rm -rf var/ .pytest_cache .ruff_cache
