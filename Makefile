# Two entry points, each makes its own virtual environment (.venv) with what it needs:
#   make demo   runs the quickstart (writes quickstart.png)
#   make test   runs the default test suite (slow tests: make test-slow)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.flowax-installed

.PHONY: demo test test-slow bench lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,examples,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/quickstart.py

# pytest exits 5 when it collected no test: an empty suite is a failure, not a pass.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: no tests were collected" >&2; exit 1; fi; exit $$rc

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m slow; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_sweep.py

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
