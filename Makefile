# The project's front door. `make run` starts everything locally; `make test` checks everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
STAMP := $(VENV)/.synced-$(shell cat uv.lock pyproject.toml 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: help install run run-scaled serve db stop clean migrate lint fmt test test-fast test-unit check-python bench-replica bench-events seed bench-bulkhead bench-http bench-http-instructions monitor module workshop kube-generate kube-render audit bench-sql-tag loadtest

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

check-python:
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11+ is required: install python3 (Debian: apt-get install -y python3 python3-venv)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { echo "Python 3.11+ is required, found $$($(PYTHON) --version). Install python3.11 or newer, or run: make PYTHON=python3.12 ..."; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo "Python's venv module is missing: apt-get install -y python3-venv"; exit 1; }

# The virtualenv is rebuilt from the lock file whenever uv.lock or pyproject.toml changes.
$(STAMP): uv.lock pyproject.toml | check-python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@$(VENV)/bin/uv sync --frozen --quiet
	@rm -f $(VENV)/.synced-* && touch $@

install: $(STAMP) ## create .venv and install the locked dependencies

db: $(STAMP) ## start the local PostgreSQL primary + streaming replica (ports 55432/55433; PGSTACK_REPLICAS=2: and 55434)
	@$(PY) -m tools.pgstack start

migrate: db ## migrate the local database to head
	@$(PY) -m app migrate

seed: migrate ## fill the local database with demo data (PRESET=small|large, SEED=1; RESET=1 empties first)
	@$(PY) -m app seed --preset $(or $(PRESET),small) --seed $(or $(SEED),1) $(if $(RESET),--reset,)

bench-bulkhead: migrate ## checkout p99 idle vs under a flood of slow reports (ARGS=--help for options)
	@$(PY) -m bench.bulkhead $(ARGS)

# With PGSTACK_REPLICAS=2 (or more) the app reads from every replica the stack started, unless
# APP_REPLICA_DATABASE_URLS says otherwise.
REPLICA_URLS = $(if $(filter-out 0 1,$(PGSTACK_REPLICAS)),APP_REPLICA_DATABASE_URLS="$${APP_REPLICA_DATABASE_URLS:-$$($(PY) -m tools.pgstack env | sed -n 's/^APP_REPLICA_DATABASE_URLS=//p')}",)

run: migrate ## start databases, migrate, load demo data (first run only), serve the API on :8000 (POOLER=1: through PgBouncer; PGSTACK_REPLICAS=2: two replicas)
	@$(PY) -m app seed --preset small --if-empty
	@echo ""
	@echo "  API docs   http://127.0.0.1:8000/docs"
	@echo "  liveness   http://127.0.0.1:8000/healthz"
	@echo "  readiness  http://127.0.0.1:8000/readyz"
	@echo "  metrics    http://127.0.0.1:8000/metrics"
	@echo "  (the databases keep running after Ctrl-C; 'make stop' stops them)"
	@echo ""
	@$(if $(POOLER),$(PY) -m tools.pooler run -- ,$(REPLICA_URLS) )$(PY) -m app serve

run-scaled: migrate ## INSTANCES app processes and WORKERS workers behind HAProxy on :8000 (POOLER=1: through PgBouncer); Ctrl-C stops all
	@$(PY) -m app seed --preset small --if-empty
	@$(PY) -m tools.scaled --instances $(or $(INSTANCES),2) --workers $(or $(WORKERS),2) --port $(or $(APP_PORT),8000) $(if $(POOLER),--pooler,) $(ARGS)

monitor: $(STAMP) ## Prometheus + Alertmanager (Debian's binaries) on the local app (APP_PORT) and databases; DEMO=1: alerts within minutes; Ctrl-C stops
	@$(PY) -m tools.monitor $(if $(filter-out 0,$(DEMO)),--demo,) $(if $(WORKER),--worker $(WORKER),)

audit: db ## the database audit on the local stack (ARGS=--verify, --json, --markdown FILE, ...)
	@APP_AUDIT_DATABASE_URL="$${APP_AUDIT_DATABASE_URL:-$$($(PY) -m tools.pgstack env | sed -n 's/^APP_AUDIT_DATABASE_URL=//p')}" \
		$(PY) -m app db audit $(ARGS)

loadtest: $(STAMP) ## mixed journeys against `make run`'s app at RATE/s for DURATION s (SHAPE=step), verdict on the SLOs
	@$(PY) -m loadtest --host $(or $(HOST),http://127.0.0.1:$(or $(APP_PORT),8000)) --rate $(or $(RATE),5) --duration $(or $(DURATION),60) --shape $(or $(SHAPE),constant) $(if $(BASELINE),--baseline $(BASELINE),) $(ARGS)

stop: ## stop the local databases
	@if [ -x $(PY) ]; then $(PY) -m tools.pgstack stop; else $(PYTHON) -m tools.pgstack stop; fi

clean: ## stop and delete the local databases
	@if [ -x $(PY) ]; then $(PY) -m tools.pgstack clean; else $(PYTHON) -m tools.pgstack clean; fi

workshop: migrate ## the workshop on the local stack: SCENARIOS="F" (default all), PRESET=large, ARGS=--quick
	@$(PY) -m app seed --preset $(or $(PRESET),small) --if-empty
	@$(PY) -m workshop run $(or $(SCENARIOS),all) $(ARGS)

module: $(STAMP) ## scaffold a new business module: make module NAME=inventory
	@test -n "$(NAME)" || { echo "usage: make module NAME=<python identifier>"; exit 2; }
	@$(PY) -m app new-module $(NAME)

lint: $(STAMP) ## ruff, mypy (app/, workshop/, tests/), and the import-linter boundary contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: $(STAMP) ## format and auto-fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The unit layer (tests/unit: services against fakes, no database, seconds) runs first, so a
# broken use case fails the run before PostgreSQL starts; the rest runs after it.
test: lint ## lint, then the unit layer, then every other test against a throwaway primary + replica
	$(PY) -m pytest -q -m unit tests/unit
	$(PY) -m pytest -m "not unit" --durations=15 $(PYTEST_ARGS)

test-fast: $(STAMP) ## the tests alone, without lint (the unit layer first)
	$(PY) -m pytest -q -m unit tests/unit
	$(PY) -m pytest -m "not unit" $(PYTEST_ARGS)

test-unit: $(STAMP) ## the unit layer alone: every module's services against fakes, no database
	$(PY) -m pytest -q -m unit tests/unit

bench-replica: $(STAMP) ## share of statements on the primary, replica routing on vs off (90% reads)
	$(PY) -m bench.replica_routing $(BENCH_ARGS)

bench-events: $(STAMP) ## outbox benchmark: commit-to-listener latency, deliveries per second
	$(PY) -m bench.events $(BENCH_ARGS)

bench-http: $(STAMP) ## HTTP instrumentation overhead: off / ours / instrumentator, side by side (~2.5 min)
	$(PY) -m bench.http_overhead $(BENCH_ARGS)

bench-sql-tag: $(STAMP) ## the module/route SQL comment's cost: hook ns and SELECT 1 round trips, off vs on
	$(PY) -m bench.sql_tag $(BENCH_ARGS)

bench-http-instructions: $(STAMP) ## the same variants' CPU instructions a request, under valgrind (~5 min)
	$(PY) -m bench.http_instructions $(BENCH_ARGS)

kube-generate: $(STAMP) ## rewrite the Kubernetes PrometheusRule and dashboard ConfigMaps from prometheus/rules/ and grafana/dashboards/
	$(PY) -m tools.k8s_monitoring

kube-render: $(STAMP) ## print an overlay's manifests (OVERLAY=dev|production), with the locked kubectl's kustomize
	@$(VENV)/bin/kubectl kustomize deploy/k8s/overlays/$(or $(OVERLAY),production)
