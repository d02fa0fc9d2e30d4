# The README's commands. `make` creates a local virtual environment, so a fresh clone needs
# nothing but Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gridgis demo

test: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_city.py
	$(BIN)/python bench/bench_grids.py
	$(BIN)/python bench/bench_staff.py
	$(BIN)/python bench/bench_coverage.py
	$(BIN)/python bench/bench_siting.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf out .pytest_cache
