# Conveniences after the README's set-up commands (which create .venv).
# The README's two commands are the entry points; `.ci/run` runs the test one.
BIN := .venv/bin

.PHONY: test-slow bench bench-quick bench-ntk docs lint

test-slow:
	$(BIN)/python -m pytest -n 2 -m slow

bench:
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_particles.py
	$(BIN)/python benchmarks/bench_barycenter.py
	$(BIN)/python benchmarks/bench_curvature.py
	$(BIN)/python benchmarks/bench_games.py
	$(BIN)/python benchmarks/bench_diffusion.py
	$(BIN)/python benchmarks/bench_depth.py

bench-quick:
	$(BIN)/pip install -q -e ".[bench]"
	for b in benchmarks/bench_*.py; do case $$b in *bench_ntk*) continue;; esac; $(BIN)/python $$b --quick || exit 1; done

docs:
	$(BIN)/pip install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint:
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# neural-tangents needs jax <= 0.4.25: its own venv, used only by benchmarks/bench_ntk.py
.venv-nt/bin/python:
	python3 -m venv .venv-nt
	.venv-nt/bin/pip install -q "jax==0.4.25" "jaxlib==0.4.25" "numpy<2" "tf2jax<0.3.7" "neural-tangents==0.6.5"

bench-ntk: .venv-nt/bin/python
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/bench_ntk.py
