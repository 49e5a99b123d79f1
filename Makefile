# txnmon developer commands. `make help` lists them.
# Everything runs from a fresh clone: uv, the virtualenv, the Kafka and mongo-java-server jars
# are installed on first use; the local stack lives under .devstack/ (git-ignored).

PY      ?= python3
UV      := $(PY) -m uv
VENV    := .venv
BIN     := $(VENV)/bin
STACK   := $(PY) devstack/stack.py
PYTEST_ARGS ?=

export AIRFLOW_HOME ?= $(CURDIR)/.airflow

.DEFAULT_GOAL := help
.PHONY: help venv fetch up down status test test-unit test-faults lint fmt demo stream clean airflow rollups dashboard browser bench

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(VENV)/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PY) -m pip install --quiet --disable-pip-version-check "uv>=0.13,<0.14"
	$(UV) sync --frozen --python $(PY)
	@touch $@

venv: $(VENV)/.synced ## create/update the virtualenv from uv.lock

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

test: venv lint fetch browser ## the whole suite: starts the stack if needed, stops what it started
	$(STACK) run -- $(BIN)/pytest $(PYTEST_ARGS)

test-faults: venv fetch ## only the fault-injection tests (kill, outage); `make test` runs them too
	$(STACK) run -- $(BIN)/pytest -m faults $(PYTEST_ARGS)

stream: up ## run the streaming processor in the foreground (Ctrl-C stops it cleanly)
	$(BIN)/txnmon stream

dashboard: up ## the live KPI dashboard on http://127.0.0.1:8501
	$(BIN)/streamlit run dashboard/app.py --server.address=127.0.0.1 --server.port=8501 \
	  --server.headless=true --browser.gatherUsageStats=false --client.toolbarMode=viewer

airflow: up ## Airflow standalone on http://127.0.0.1:8080 (no login, local use), this repo's DAGs
	bin/airflow standalone

rollups: venv ## recompute every KPI rollup now (what the kpi_rollups DAG does incrementally)
	$(BIN)/txnmon rollups --full

bench: venv fetch ## benchmarks against the local stack -> bench/results/latest.json
	$(STACK) run -- $(BIN)/python bench/run.py $(BENCH_ARGS)

demo: up ## the stack up, the seed sample replayed and processed, a summary printed
	$(BIN)/python -m cli.demo

clean: down ## stop the stack and delete its data (keeps the downloaded jars)
	rm -rf .devstack/kafka/data .devstack/mongo/data .devstack/logs
