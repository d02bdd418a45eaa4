# The two commands: `make run` and `make test`. Everything else is a helper they call.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format tools bench bench-batch bench-feedback bench-hostile clean sync-chart-assets screenshots lock check-lock

# Every venv installs from requirements-dev.lock: every package, transitive ones included, pinned
# with its hashes (pip --require-hashes refuses anything else). clients/python (SDK + MLflow
# deployments plugin) is then installed editable without dependencies (its dependencies are in
# the lock); its pyproject.toml holds the plugin's entry point, so a change there reinstalls.
# requirements*.txt hold the direct pins and why; `make lock` turns them into the lock files.
$(STAMP): requirements-dev.lock clients/python/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e ./clients/python
	@touch $(STAMP)

venv: $(STAMP)

## make run: set up everything on a fresh machine and run the control plane (Ctrl-C stops it all).
run: $(STAMP)
	$(PY) scripts/run.py

## make test: lint, then the whole suite (SQLite by default; DATABASE_URL=postgres://... for PostgreSQL).
## The suite starts hundreds of Python processes (gunicorn, Celery, manage.py); where
## PYTHONDONTWRITEBYTECODE is set (CI machines) each would compile our modules again, so they are
## compiled once first.
test: $(STAMP) tools lint
	$(PY) -m compileall -q -j 0 controlplane registry routing monitoring experiments delivery tests clients/python >/dev/null
	$(PY) -m pytest $(PYTEST_ARGS)

## make lock: resolve requirements.txt (image) and requirements-dev.txt (venv) into hashed lock files,
## keeping existing pins where they still fit; `make lock LOCK_UPGRADE=--upgrade` moves everything to the newest.
LOCK_UPGRADE ?=
PIP_COMPILE = $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-find-links --no-emit-index-url --no-emit-trusted-host
lock: $(STAMP)
	$(PIP_COMPILE) $(LOCK_UPGRADE) -o requirements.lock requirements.txt
	$(PIP_COMPILE) $(LOCK_UPGRADE) -o requirements-dev.lock requirements-dev.txt
	@# The editable client has no single file to hash: drop its line; the venv recipe installs it.
	$(PY) scripts/check_lock.py --strip-editable requirements-dev.lock
	$(MAKE) venv
	$(PY) scripts/check_lock.py

## make check-lock: the venv holds exactly what requirements-dev.lock pins (and the two locks agree).
check-lock: $(STAMP)
	$(PY) scripts/check_lock.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
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
	$(PY) bench/batch.py
	$(PY) bench/feedback.py

## make bench-batch: a 1,000,000-row batch job (one worker, make run's broker) next to `mlflow models predict` on the same file.
bench-batch: $(STAMP)
	$(PY) bench/batch.py

## make bench-feedback: /feedback items/s accepted and written, and what it costs /predict alongside.
bench-feedback: $(STAMP) tools
	$(PY) bench/feedback.py

## make bench-hostile: time per KB of parse + validate for hostile /predict bodies, 1 KB to 5 MB (no server).
bench-hostile: $(STAMP)
	$(PY) bench/hostile_input.py

## make sync-chart-assets: copy monitoring/ rules and dashboards into the chart (a test fails on drift).
sync-chart-assets:
	bash scripts/sync-chart-assets.sh

## make screenshots: rerun the browser test and refresh docs/screenshots/.
screenshots: $(STAMP) tools
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/routing/test_browser.py -q

clean:
	rm -rf var/ .env .pytest_cache .ruff_cache
