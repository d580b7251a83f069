# The two commands a newcomer needs: `make run` and `make test`. Both create .venv on first use.
VENV   := .venv
BIN    := $(VENV)/bin
PYTHON ?= python3
STAMP  := $(VENV)/.installed

.PHONY: run test check fmt schema settings-doc bench bench-import bench-scale

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: the gateway on http://127.0.0.1:8080 with an embedded PostgreSQL and demo data
run: $(STAMP)
	$(BIN)/leadgate serve --demo

## test: the whole suite against a real PostgreSQL (DATABASE_URL, or the embedded server)
test: $(STAMP)
	$(BIN)/pytest

## check: formatting, lint, types, import contracts (pyproject.toml), and the exported schema
check: $(STAMP)
	$(BIN)/ruff format --check src tests tools
	$(BIN)/ruff check src tests tools
	$(BIN)/mypy --strict src tests tools bench
	$(BIN)/lint-imports
	$(BIN)/leadgate export-schema | diff -u schema.graphql -

fmt: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

schema: $(STAMP)
	$(BIN)/leadgate export-schema > schema.graphql

## settings-doc: README's configuration table from the Settings declarations (src/leadgate/config.py)
settings-doc: $(STAMP)
	$(BIN)/python -m leadgate.config README.md

## bench: gateway vs a raw floor and PostGraphile on one database → bench/RESULTS.md
##        (BENCH_ARGS=--quick for a smoke run, BENCH_ARGS=--leads=1000000 for the 1 M case)
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## bench-search: leads(search:) at 1 M leads per term class, 1 and 16 connections → bench/SEARCH.md
##               (BENCH_ARGS=--leads=N for another size, --quick for a smoke run)
.PHONY: bench-search
bench-search: $(STAMP)
	$(BIN)/python bench/search.py $(BENCH_ARGS)

## bench-import: `leadgate import` of 100,000 CSV rows → bench/IMPORT.md (BENCH_ARGS=--rows=N)
bench-import: $(STAMP)
	$(BIN)/python bench/import.py $(BENCH_ARGS)

## bench-scale: --workers 1 vs 2, LISTEN/NOTIFY vs NATS, 10,000 subscribers over 2 gateways,
##              relay lag at 1,000 writes/s → bench/SCALE.md (BENCH_ARGS=--quick: a smoke run)
bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py $(BENCH_ARGS)
