# Every target sets up what it needs: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-all bench lint system-deps

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# constraints.txt pins every version this suite was last verified with
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# The default comparison: every variant on the embedded digits dataset, 3 seeds.
run: setup
	$(BIN)/mlpbench run

# The fast tier, before every commit: contract, per-step parity of every variant and optimizer,
# the CLI's bad inputs, the results schema, reports from fixtures, the never-imports.
# Two processes share the tests that measure nothing; the few that read a process' CPU time or
# speed (`serial`) then run alone.
test: setup
	$(BIN)/python -m pytest -m "not system and not serial" -n 2 --dist loadfile --no-loadscope-reorder
	$(BIN)/python -m pytest -m "serial and not system"

# Everything, as CI runs it: adds the system tests (loopback clusters, Ctrl-C and kill, long
# hostile runs, Fashion-MNIST, the browser, the CI gate's own tests). Those that measure and
# race nothing join the parallel part (tests/conftest.py SHARE_THE_MACHINE); the cluster tests,
# which race deadlines but read no speed, run two at a time beside each other only
# (TWO_AT_A_TIME); the rest are `serial` and run alone.
test-all: setup
	$(BIN)/python -m pytest -m "not serial and not two_at_a_time" -n 2 --dist loadfile --no-loadscope-reorder
	$(BIN)/python -m pytest -m "two_at_a_time" -n 2 --dist load
	$(BIN)/python -m pytest -m "serial"

bench: setup
	bash .ci/bench

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Optional Debian packages: real Fashion-MNIST data and a browser for the report test.
# Tests that need them are skipped, with the reason, when they are missing.
system-deps:
	apt-get update -qq
	apt-get install -y -qq dataset-fashion-mnist chromium
