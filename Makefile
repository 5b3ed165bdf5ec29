# Each target sets itself up: the first run creates .venv and installs into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test studio lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per install set, so `make run` never waits for Label Studio and browsers.
$(VENV)/.installed-core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test,studio,browser,serve,scale]"
	touch $@ $(VENV)/.installed-core

$(VENV)/.installed-studio: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[studio]"
	touch $@ $(VENV)/.installed-core

run: $(VENV)/.installed-core  ## train and evaluate on gold/, print the P/R/F table (no server)
	$(BIN)/annotate run

test: $(VENV)/.installed-test  ## run the test suite (starts a real Label Studio on 127.0.0.1)
	ANNOTATE_REQUIRE_STUDIO=1 $(BIN)/python -m pytest

studio: $(VENV)/.installed-studio  ## start the local Label Studio for annotators
	$(BIN)/annotate studio up

lint: $(VENV)/.installed-test
	$(BIN)/ruff check annotate tests bench
	$(BIN)/ruff format --check annotate tests bench

bench: $(VENV)/.installed-test  ## speed benchmarks, each next to its baseline
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) reports .pytest_cache .ruff_cache
