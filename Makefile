# The README's commands. `make` creates a local virtual environment, so a fresh clone needs
# nothing but Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-province lint clean browser bench-tools

# the map tests run in a real browser: Debian's Chromium and ChromeDriver (and CJK fonts so
# the Chinese labels render), installed once when missing
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BROWSER_PKGS := chromium chromium-driver fonts-noto-cjk

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# builds the city, then serves it (API + maps) until Ctrl-C; DEMO_SERVE=0 only builds
DEMO_SERVE ?= 1
demo: $(STAMP)
	$(BIN)/gridgis demo
	@if [ "$(DEMO_SERVE)" = 1 ]; then GRIDGIS_ANONYMOUS_READ=1 $(BIN)/gridgis serve; fi

browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || ! fc-list | grep -q "Noto Sans CJK"; then \
	  echo "installing $(BROWSER_PKGS) for the map tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -qq $(BROWSER_PKGS) >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(BROWSER_PKGS) >/dev/null; }; \
	fi

test: $(STAMP) browser
	$(BIN)/pytest

# wrk (C) drives the HTTP benchmark, so the load generator does not eat the server's cores
bench-tools:
	@command -v wrk >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -qq wrk >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk >/dev/null; }; }

bench: $(STAMP) browser bench-tools
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_city.py
	$(BIN)/python bench/bench_grids.py
	$(BIN)/python bench/bench_staff.py
	$(BIN)/python bench/bench_coverage.py
	$(BIN)/python bench/bench_siting.py
	$(BIN)/python bench/bench_maps.py
	$(BIN)/python bench/bench_api.py
	$(BIN)/python bench/bench_orders.py

# the whole synthetic Shandong on a LocalCluster of 2 processes and one PostGIS (about an
# hour on 2 cores; resumable: a second run skips the counties done)
bench-province: $(STAMP) bench-tools
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_province.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf out .pytest_cache
