# txnmon developer commands. `make help` lists them.
# Everything runs from a fresh clone: uv, the virtualenv, the Kafka and mongo-java-server jars
# are installed on first use; the local stack lives under .devstack/ (git-ignored).

# PY: any Python 3.11 to 3.13 (`make demo PY=python3.13`); bin/find-python also finds pyenv's
# installed-but-not-selected versions. PY313: the second interpreter `make test` runs the unit tests
# with (empty: skip that step).
PY      ?= python3
PYTHON  := $(shell bin/find-python $(PY))
ifeq ($(PYTHON),)
$(error no working $(PY): install Python 3.11, 3.12 or 3.13, or pass PY=python3.X)
endif
PYVER   := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
UV      := $(PYTHON) -m uv
VENV    := .venv
BIN     := $(VENV)/bin
STACK   := $(PYTHON) devstack/stack.py
PYTEST_ARGS ?=
PY313   ?= python3.13
VENV313 := .venv313

export AIRFLOW_HOME ?= $(CURDIR)/.airflow

.DEFAULT_GOAL := help
.PHONY: help venv fetch up down status test test-unit test-unit-313 test-faults lint fmt demo stream clean airflow rollups dashboard browser bench

help: ## list the commands
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# one stamp per Python version: `make venv PY=python3.13` after a 3.11 venv re-creates it with 3.13
$(VENV)/.synced-$(PYVER): pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check "uv>=0.13,<0.14"
	$(UV) sync --frozen --python $(PYTHON)
	@rm -f $(VENV)/.synced $(VENV)/.synced-*
	@touch $@

venv: $(VENV)/.synced-$(PYVER) ## create/update the virtualenv from uv.lock (PY=python3.12 or python3.13 to choose)

$(VENV313)/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check "uv>=0.13,<0.14"
	UV_PROJECT_ENVIRONMENT=$(VENV313) $(UV) sync --frozen --python "$$(bin/find-python $(PY313))"
	@touch $@

test-unit-313: ## the unit tests again under Python 3.13 (a second venv, .venv313/, from the same uv.lock)
	@if [ -z "$(PY313)" ]; then echo "unit tests under 3.13: skipped (PY313 is empty)"; \
	elif [ "$(PYVER)" = "3.13" ]; then echo "unit tests under 3.13: the main venv is 3.13 already"; \
	else $(MAKE) --no-print-directory $(VENV313)/.synced && $(VENV313)/bin/pytest tests/unit -q -p no:cacheprovider; fi

fetch: ## download the Kafka and mongo-java-server jars (cached in .devstack/)
	@$(STACK) fetch

up: venv ## start Kafka and the MongoDB-wire server, create topics and indexes
	@$(STACK) up
	@$(BIN)/txnmon init

down: ## stop what `make up` started
	@$(STACK) down

status: ## what runs, where it logs, lag and counts
	@$(STACK) status; rc=$$?; \
	  if [ $$rc -eq 0 ] && [ -x $(BIN)/txnmon ]; then $(BIN)/txnmon status; else exit $$rc; fi

lint: venv ## ruff
	$(BIN)/ruff check .

fmt: venv
	$(BIN)/ruff check --fix .

test-unit: venv ## fast tests, no network
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

browser: ## Debian's Chromium for the dashboard's browser test (needs root or an existing install)
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || { echo "make browser: could not install chromium (apt-get install chromium as root)"; exit 1; }

test: venv lint fetch browser ## the whole suite: starts the stack if needed, stops what it started; unit tests under 3.13 too
	$(STACK) run -- $(BIN)/pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-unit-313

test-faults: venv fetch ## only the fault-injection tests (kill, outage); `make test` runs them too
	$(STACK) run -- $(BIN)/pytest -m faults $(PYTEST_ARGS)

stream: up ## run the streaming processor in the foreground (Ctrl-C stops it cleanly)
	$(BIN)/txnmon stream

dashboard: up ## the live KPI dashboard on http://127.0.0.1:8501
	$(BIN)/streamlit run src/txnmon/dashboard/app.py --server.address=127.0.0.1 --server.port=8501 \
	  --server.headless=true --browser.gatherUsageStats=false --client.toolbarMode=viewer

airflow: up ## Airflow standalone on http://127.0.0.1:8080 (no login, local use), this repo's DAGs
	bin/airflow standalone

rollups: venv ## recompute every KPI rollup now (what the kpi_rollups DAG does incrementally)
	$(BIN)/txnmon rollups --full

bench: venv fetch ## benchmarks against the local stack -> bench/results/latest.json
	@# the bench-only group (quixstreams, the peer of bench/quix_peer.py), added to the venv; `make venv` drops it again
	$(UV) sync --frozen --inexact --group bench --python $(PYTHON)
	$(STACK) run -- $(BIN)/python bench/run.py $(BENCH_ARGS)

demo: up ## the stack up, the seed sample replayed and processed, a summary printed
	$(BIN)/python -m txnmon.cli.demo

clean: down ## stop the stack and delete its data (keeps the downloaded jars)
	rm -rf .devstack/kafka/data .devstack/mongo/data .devstack/logs
