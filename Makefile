# The README's two commands: `make demo` (main job, embedded SQLite) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo serve screenshots test lint typecheck pytest bench clean ari-reference

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job on the embedded default (SQLite under var/): check the shipped configuration,
# play the shipped scenario through the real daemon against the ARI simulator, then read
# the call logs it wrote.
demo: $(STAMP)
	$(BIN)/pbxd check
	$(BIN)/pbxd simulate scenarios/acme-morning.yaml
	$(BIN)/pbxd calls 01 70 00 00 01 --limit 3
	$(BIN)/pbxd calls 09 72 10 00 01 --limit 3
	$(BIN)/pbxd calls 01 70 00 00 10 --limit 1
	$(BIN)/pbxd calls 01 70 00 00 11 --limit 10
	$(BIN)/pbxd calls 01 70 00 00 30 --limit 3
	$(BIN)/pbxd calls 01 70 00 01 03 --limit 3
	$(BIN)/pbxd calls +44 20 7946 0123 --limit 3
	$(BIN)/pbxd calls 01 70 00 00 09 --limit 3
	$(BIN)/pbxd calls 09 72 10 00 02 --limit 3
	$(BIN)/pbxd usage 09 72 10 00 02 --period 2026-12
	$(BIN)/pbxd usage 01 70 00 00 01 --period 2026-12
	@echo
	@echo "The web pages (call logs, reports with charts, targets): run 'make serve',"
	@echo "then open http://127.0.0.1:8080/ and log in with the password it prints."

# The daemon with its web pages over the demo's call log, on plain HTTP on loopback (hence
# secure cookies off). With no Asterisk it keeps retrying ARI quietly; the pages work.
serve: $(STAMP)
	@test -f var/pbxd.db || $(MAKE) --no-print-directory demo
	@$(BIN)/python scripts/demo_user.py
	@PBXD_ARI_PASSWORD=$${PBXD_ARI_PASSWORD:-no-asterisk-here} PBXD_HTTP_SECURE_COOKIES=false \
		PBXD_LOG_LEVEL=$${PBXD_LOG_LEVEL:-error} $(BIN)/pbxd run

# docs/screenshots/*.png of every page, by headless chromium (apt-get install chromium chromium-driver).
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

lint: $(STAMP)
	$(BIN)/ruff check pbxd tests bench scripts
	$(BIN)/ruff format --check pbxd tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy pbxd

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/config_load.py
	$(BIN)/python bench/config_load.py --numbers 1000000 --runs 1
	$(BIN)/python bench/calls.py
	$(BIN)/python bench/concurrency.py
	$(BIN)/python bench/agi.py
	$(BIN)/python bench/reload.py

# The ARI reference data the tests carry (tests/ari_conformance/data/), remade from
# ../shared/asterisk-ari; `make test` fails while the two differ.
ari-reference: $(STAMP)
	$(BIN)/python scripts/ari_reference.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
