# Kommunchatt: `make run` starts the whole system, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Interpreters: on PATH, or installed by pyenv (whose shims may exist without a usable version).
find_python = $(shell for p in $(1) $(HOME)/.pyenv/versions/$(2).*/bin/$(1); do \
	$$p -c 'import sys; assert sys.version_info[:2] == ($(subst .,$(comma) ,$(2)))' 2>/dev/null && { echo $$p; break; }; done)
comma := ,
PYTHON311 ?= $(call find_python,python3.11,3.11)
PYTHON310 ?= $(call find_python,python3.10,3.10)
export KOMMUNCHATT_DATA_DIR ?= $(CURDIR)/var
VENV := .venv
VENV_RASA := .venv-rasa
# pip's own progress (stdout, a terminal: live bars) goes to the terminal; its warnings and deprecation
# notices (stderr) to this log, errors to both.
SETUP_LOG := $(KOMMUNCHATT_DATA_DIR)/logs/setup.log
pip_install = start=$$(date +%s); mkdir -p $(dir $(SETUP_LOG)); \
	$(1)/bin/pip install --disable-pip-version-check --progress-bar on $(2) \
		2> >(tee -a $(SETUP_LOG) | grep -E '^(ERROR|error)' >&2) \
		|| { sleep 0.5; echo "error: $(3) (see above and $(SETUP_LOG)): check the network to PyPI and run make again."; exit 1; }; \
	echo "$(4) installed in $$(( $$(date +%s) - start )) s"

.PHONY: help setup run replicas test test-service test-rasa bench lint browser haproxy clean db-upgrade backup restore deploy-check

help:
	@echo "make run    - set up what is missing and start service, Rasa and actions (Ctrl-C stops)"
	@echo "make test   - set up what is missing and run the whole test suite"
	@echo "make replicas - 2 services + 2 Rasa + 2 action servers behind HAProxy (needs DATABASE_URL, REDIS_URL)"
	@echo "make bench  - run the benchmarks in bench/"
	@echo "make backup FILE=x.tar.gz / make restore FILE=x.tar.gz [REPLACE=1] - database + Rasa tracker (docs/deployment.md)"
	@echo "make db-upgrade - migrate the database to the newest schema revision (every start does it too)"
	@echo "make deploy-check - validate deploy/ (Dockerfiles, compose, Kubernetes, Grafana) without Docker or a cluster"
	@echo "make lint   - ruff"

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON311)" || { echo "error: Python 3.11 was not found: install it (e.g. 'pyenv install 3.11') or set PYTHON311=/path/to/python3.11."; exit 1; }
	@test -d $(VENV) || $(PYTHON311) -m venv $(VENV)
	@echo "installing the service environment ($(VENV), Python 3.11) ..."
	@$(call pip_install,$(VENV),-e '.[test]',installing the service's packages failed,the service environment)
	@touch $@

$(VENV_RASA)/.installed: requirements-rasa.txt constraints-rasa.txt
	@test -n "$(PYTHON310)" || { echo "error: Python 3.10 was not found, and Rasa 3.6 needs it: install it (e.g. 'pyenv install 3.10' or 'apt-get install python3.10') or set PYTHON310=/path/to/python3.10."; exit 1; }
	@test -d $(VENV_RASA) || $(PYTHON310) -m venv $(VENV_RASA)
	@echo "installing the Rasa environment ($(VENV_RASA), Python 3.10; the first time takes a few minutes) ..."
	@$(call pip_install,$(VENV_RASA),-r requirements-rasa.txt -c constraints-rasa.txt,installing Rasa failed,the Rasa environment)
	@touch $@

setup: $(VENV)/.installed $(VENV_RASA)/.installed

run: setup
	@$(VENV)/bin/python -m kommunchatt.runner

# Debian's Chromium for the browser tests (Playwright cannot download its own browser here).
browser:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the browser tests ..."; \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || { echo "error: could not install chromium: run 'apt-get install chromium' as root."; exit 1; }; }

# Debian's HAProxy for several replicas on one machine (`make replicas`, tests/test_replicas.py).
haproxy:
	@command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || { echo "installing Debian's haproxy ..."; \
		(apt-get update -qq && apt-get install -y -qq haproxy >/dev/null) || { echo "error: could not install haproxy: run 'apt-get install haproxy' as root."; exit 1; }; }

replicas: setup haproxy
	@$(VENV)/bin/python -m kommunchatt.replicas

test: setup browser haproxy
	@$(VENV)/bin/python -m kommunchatt.runner --prepare-only
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/lint-imports --no-cache >/dev/null || $(VENV)/bin/lint-imports --no-cache
	@$(MAKE) -s test-rasa
	@$(VENV)/bin/python -m pytest -q -ra --durations=25 $(PYTEST_ARGS)

# The Rasa side in its own environment: conversation tests and the held-out NLU evaluation.
test-rasa:
	@model=$$($(VENV)/bin/python -m kommunchatt.runner --rasa-model); \
	RASA_TELEMETRY_ENABLED=false PYTHONPATH=$(CURDIR) $(VENV_RASA)/bin/rasa test core --stories tests/rasa/test_stories.yml \
		--model $$model --out $(KOMMUNCHATT_DATA_DIR)/rasa-results --fail-on-prediction-errors >$(KOMMUNCHATT_DATA_DIR)/rasa-test.log 2>&1 \
		|| { tail -30 $(KOMMUNCHATT_DATA_DIR)/rasa-test.log; echo "error: Rasa conversation tests failed (log: $(KOMMUNCHATT_DATA_DIR)/rasa-test.log)"; exit 1; }; \
	echo "Rasa conversation tests passed"; \
	PYTHONPATH=$(CURDIR) $(VENV_RASA)/bin/python tests/rasa/evaluate_nlu.py --model $$model

bench: setup
	@$(VENV)/bin/python -m kommunchatt.runner --prepare-only
	@$(VENV)/bin/python bench/retrieval.py
	@$(VENV)/bin/python bench/dialogue.py
	@$(VENV)/bin/python bench/handoff.py

# Operations (docs/deployment.md): schema migrations, backup and restore of the database and Rasa's tracker.
db-upgrade: setup
	@$(VENV)/bin/kommunchatt db upgrade

backup: setup
	@test -n "$(FILE)" || { echo "usage: make backup FILE=backups/kommunchatt-$$(date +%F).tar.gz"; exit 2; }
	@$(VENV)/bin/kommunchatt backup "$(FILE)"

restore: setup
	@test -n "$(FILE)" || { echo "usage: make restore FILE=backups/kommunchatt-2026-12-02.tar.gz [REPLACE=1]"; exit 2; }
	@$(VENV)/bin/kommunchatt restore "$(FILE)" $(if $(REPLACE),--replace)

deploy-check: setup
	@$(VENV)/bin/python -m pytest -q tests/test_deploy_files.py

lint: setup
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/lint-imports --no-cache >/dev/null || $(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf var .pytest_cache
