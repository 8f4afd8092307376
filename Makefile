# The same targets run locally and in CI (.ci/run calls `make test`).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test lint typecheck pytest demo bench schemas clean

setup:
	bash scripts/setup.sh

test: setup
	$(VENV)/bin/ruff check agent tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

lint:
	$(VENV)/bin/ruff check agent tests bench

typecheck:
	$(VENV)/bin/mypy

pytest:
	$(VENV)/bin/pytest

demo: setup
	$(VENV)/bin/station-agent demo

bench: setup
	$(PY) bench/run_all.py

schemas:
	$(PY) -m agent.schema_export docs/schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
