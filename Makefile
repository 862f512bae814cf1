# werk: every target creates or reuses .venv through uv (installed into the user's Python if missing).
PYTHON ?= python3
VENV := .venv
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(VENV)/bin

.PHONY: demo run test test-fast lint format bench clean help

help:
	@echo "make demo   - install and start werk with the simulated demo plant"
	@echo "make test   - install test tools and run the full test suite"
	@echo "make lint   - ruff, mypy and import-linter"
	@echo "make bench  - run the benchmarks and print their figures"

$(UV):
	$(PYTHON) -m pip install --user --quiet uv

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

demo: $(VENV)/.synced
	$(RUN)/werk demo

run: $(VENV)/.synced
	$(RUN)/werk run

test: $(VENV)/.synced
	bash scripts/test-deps.sh
	$(RUN)/pytest

test-fast: $(VENV)/.synced
	$(RUN)/pytest -m "not browser and not mosquitto"

lint: $(VENV)/.synced
	$(RUN)/ruff check src tests
	$(RUN)/ruff format --check src tests
	$(RUN)/mypy
	$(RUN)/lint-imports

format: $(VENV)/.synced
	$(RUN)/ruff format src tests
	$(RUN)/ruff check --fix src tests

bench: $(VENV)/.synced
	$(RUN)/werk bench ingest
	$(RUN)/werk bench sparkplug
	$(RUN)/werk bench historian
	$(RUN)/werk bench auth

clean:
	rm -rf $(VENV) .werk .pytest_cache .mypy_cache .ruff_cache artifacts
