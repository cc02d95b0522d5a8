# Every target installs what it needs into project-local folders (.tools/, .venv/).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
UV_VERSION  := 0.13.9
TOOLS       := .tools
UV          := $(TOOLS)/uv/bin/uv
VENV        := .venv
RUN         := $(UV) run --frozen --no-sync
export UV_PYTHON_DOWNLOADS := never

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python 3.11
	@touch $@

.PHONY: install
install: $(VENV)/.synced ## the project environment (.venv), from uv.lock

.PHONY: lint
lint: install ## ruff and mypy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

.PHONY: format
format: install ## apply ruff's formatting and fixes
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

.PHONY: test
test: lint ## lint, then every test
	$(RUN) pytest

.PHONY: demo
demo: install ## run the demo
	$(RUN) safe-deploy demo

.PHONY: bench
bench: $(UV) ## run the benchmarks (slow; results go in the README)
	$(UV) sync --frozen --python 3.11 --group bench
	$(RUN) python benchmarks/run.py

.PHONY: clean
clean: ## remove environments and build output
	rm -rf $(TOOLS) $(VENV) .aws-sam .mypy_cache .ruff_cache .pytest_cache demo-output
