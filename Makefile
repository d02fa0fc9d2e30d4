# The README's commands. `make` creates a local virtual environment, so a fresh clone needs
# nothing but Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean browser

# the map tests run in a real browser: Debian's Chromium and ChromeDriver (and CJK fonts so
# the Chinese labels render), installed once when missing
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BROWSER_PKGS := chromium chromium-driver fonts-noto-cjk

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gridgis demo

browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || ! fc-list | grep -q "Noto Sans CJK"; then \
	  echo "installing $(BROWSER_PKGS) for the map tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -qq $(BROWSER_PKGS) >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(BROWSER_PKGS) >/dev/null; }; \
	fi

test: $(STAMP) browser
	$(BIN)/pytest

bench: $(STAMP) browser
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_city.py
	$(BIN)/python bench/bench_grids.py
	$(BIN)/python bench/bench_staff.py
	$(BIN)/python bench/bench_coverage.py
	$(BIN)/python bench/bench_siting.py
	$(BIN)/python bench/bench_maps.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf out .pytest_cache
