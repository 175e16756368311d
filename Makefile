# Two commands matter (see README): `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PACKAGES := pretix_integrations_core pretix_sortir pretix_helloasso_bridge pretix_crm_bridge

.PHONY: test lint check-migrations localegen localecompile check-catalogues run clean-demo

$(VENV)/.installed: setup.py
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	$(PIP) install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

## The whole test suite (SQLite and local-memory cache unless PRETIX_DATABASE_* / PRETIX_REDIS_LOCATION say otherwise)
test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/flake8 $(PACKAGES) tests bench tools demo
	$(VENV)/bin/isort --check-only --diff $(PACKAGES) tests bench tools demo

## Fails if a plugin model changed without a migration (run in a scratch data dir: never touches pretix's own folder)
check-migrations: $(VENV)/.installed
	DATA_DIR=$$(mktemp -d) PRETIX_CONFIG_FILE=/dev/null $(PY) -m pretix makemigrations --check --dry-run $(PACKAGES)

## Extract messages into the .po files (needs GNU gettext), then compile them
localegen: $(VENV)/.installed
	for p in $(PACKAGES); do (cd $$p && DATA_DIR=$$(mktemp -d) PRETIX_CONFIG_FILE=/dev/null ../$(PY) -m django makemessages \
		--settings=tests.settings --pythonpath=.. --no-wrap --add-location file -l fr -l en -i 'testing/*') || exit 1; done
	$(MAKE) localecompile

localecompile: $(VENV)/.installed
	$(PY) tools/catalogs.py compile

check-catalogues: $(VENV)/.installed
	$(PY) tools/catalogs.py check

## The local demo (see README): pretix on http://127.0.0.1:8000 with the plugins, demo data and simulators; Ctrl-C stops it
run: $(VENV)/.installed
	$(PY) -m demo.run

## Delete the demo's data (database, pretix.cfg and its keys, uploads, e-mails, logs): the next `make run` starts afresh
clean-demo:
	@if [ -f demo-data/demo.pid ] && kill -0 "$$(cat demo-data/demo.pid)" 2>/dev/null; then \
		echo "The demo is running (process $$(cat demo-data/demo.pid)): stop it with Ctrl-C first."; exit 1; fi
	rm -rf demo-data
	@echo "Demo data deleted. \`make run\` creates a fresh demo."
