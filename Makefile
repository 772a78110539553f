# The README's two commands: `make demo` (main job, embedded SQLite) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pbxd check
	$(BIN)/pbxd numbers

lint: $(STAMP)
	$(BIN)/ruff check pbxd tests bench
	$(BIN)/ruff format --check pbxd tests bench

typecheck: $(STAMP)
	$(BIN)/mypy pbxd

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/config_load.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
