# Each target sets itself up: the first run creates .venv and installs into it.
# Every install is from a lock (exact versions, sha256 hashes, wheels only): requirements/*.lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := uv==0.13.9
# Label Studio's dependencies that are published as source only (none of them is in core.lock).
SOURCE_ONLY := attr drf-flex-fields drf-generators ordered-set django-ranged-fileresponse
empty :=
comma := ,
PIP_LOCKED := $(BIN)/python -m pip install -q --require-hashes --only-binary=:all: \
	--no-binary=$(subst $(empty) $(empty),$(comma),$(SOURCE_ONLY)) -r

.PHONY: run test studio lint bench clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per install set, so `make run` never waits for Label Studio and browsers. The package
# itself goes in last, without dependencies: everything it needs came from the lock.
$(VENV)/.installed-core: pyproject.toml requirements/core.lock | $(BIN)/python
	$(PIP_LOCKED) requirements/core.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml requirements/all.lock | $(BIN)/python
	$(PIP_LOCKED) requirements/all.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@ $(VENV)/.installed-core $(VENV)/.installed-studio

$(VENV)/.installed-studio: pyproject.toml requirements/studio.lock | $(BIN)/python
	$(PIP_LOCKED) requirements/studio.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@ $(VENV)/.installed-core

# Update the locks after changing a dependency in pyproject.toml (see "Locked environment" in the README):
# the full set first, then the smaller sets constrained to it, so all agree on every shared version.
LOCK := $(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --no-header --quiet \
	--only-binary :all: $(foreach name,$(SOURCE_ONLY),--no-binary $(name))
lock: | $(BIN)/python
	$(BIN)/python -m pip install -q "$(UV)"
	$(LOCK) --extra test --extra studio --extra browser --extra serve --extra scale -o requirements/all.lock
	$(LOCK) --extra studio -c requirements/all.lock -o requirements/studio.lock
	$(LOCK) -c requirements/all.lock -o requirements/core.lock

run: $(VENV)/.installed-core  ## train and evaluate on gold/, print the P/R/F table (no server)
	$(BIN)/annotate run

# Two workers (pytest-xdist); tests/conftest.py keeps each test server's tests on one worker and
# hands out the longest work first; `make test TEST_WORKERS=0` runs the suite serially.
TEST_WORKERS ?= 2
test: $(VENV)/.installed-test  ## run the test suite (starts a real Label Studio on 127.0.0.1)
	ANNOTATE_REQUIRE_STUDIO=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25

studio: $(VENV)/.installed-studio  ## start the local Label Studio for annotators
	$(BIN)/annotate studio up

lint: $(VENV)/.installed-test
	$(BIN)/ruff check annotate tests bench
	$(BIN)/ruff format --check annotate tests bench

bench: $(VENV)/.installed-test  ## speed benchmarks, each next to its baseline
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) reports .pytest_cache .ruff_cache
