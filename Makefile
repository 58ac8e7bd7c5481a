# Conveniences after the README's set-up commands (which create .venv).
# The README's two commands are the entry points; `.ci/run` runs the test one.
BIN := .venv/bin

.PHONY: test-slow bench lint

test-slow:
	$(BIN)/python -m pytest -n 2 -m slow

bench:
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_particles.py
	$(BIN)/python benchmarks/bench_barycenter.py

lint:
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
