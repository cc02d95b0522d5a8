# Every target installs what it needs into project-local folders (.tools/, .venv/).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
UV_VERSION  := 0.13.9
TOOLS       := .tools
UV          := $(TOOLS)/uv/bin/uv
VENV        := .venv
RUN         := $(UV) run --frozen --no-sync
SAM_ENV     := $(TOOLS)/sam
SAM         := $(SAM_ENV)/bin/sam
SAM_LOCK    := scripts/sam-requirements.txt
CHECKOV_ENV := $(TOOLS)/checkov
CHECKOV_LOCK := scripts/checkov-requirements.txt
export UV_PYTHON_DOWNLOADS := never
# Environments are installed with their bytecode: with PYTHONDONTWRITEBYTECODE set (as on many CI
# images) every interpreter would otherwise compile boto3, moto and pandas again as it starts.
export UV_COMPILE_BYTECODE := 1
# ... and the project's own modules and pytest's rewritten test modules keep theirs (__pycache__,
# ignored by git): the tests start many interpreters, and each would compile them again.
unexport PYTHONDONTWRITEBYTECODE
export SAM_CLI_TELEMETRY := 0

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

# The SAM CLI pins an older boto3 than moto wants: it gets its own environment (DESIGN.md §10).
$(SAM_ENV)/.synced: $(UV) $(SAM_LOCK)
	test -x $(SAM_ENV)/bin/python || $(UV) venv --quiet --python 3.11 $(SAM_ENV)
	$(UV) pip sync --quiet --python $(SAM_ENV) --require-hashes $(SAM_LOCK)
	@touch $@

# checkov (the template's static analysis) pins its own versions of boto3 and friends as well.
$(CHECKOV_ENV)/.synced: $(UV) $(CHECKOV_LOCK)
	test -x $(CHECKOV_ENV)/bin/python || $(UV) venv --quiet --python 3.11 $(CHECKOV_ENV)
	$(UV) pip sync --quiet --python $(CHECKOV_ENV) --require-hashes $(CHECKOV_LOCK)
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: tools
tools: $(SAM_ENV)/.synced $(CHECKOV_ENV)/.synced node_modules/.installed ## the SAM CLI (.tools/sam), checkov (.tools/checkov) and the ASL validator (node_modules)

.PHONY: validate
validate: tools install ## sam validate --lint and cfn-lint on template.yaml
	$(SAM) validate --lint --template template.yaml
	$(RUN) cfn-lint template.yaml

.PHONY: build
build: tools ## sam build, with the python3.12 that scripts/python312-dir finds
	@dir="$$(scripts/python312-dir)" && PATH="$$dir:$$PATH" $(SAM) build --template template.yaml

.PHONY: lint
lint: install ## ruff and mypy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

.PHONY: format
format: install ## apply ruff's formatting and fixes
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

# Lambda runs the functions on python3.12; the project develops on 3.11: the handlers' tests run on
# both. The 3.12 environment comes from the same lock.
PY312_VENV := .venv-py312
$(PY312_VENV)/.synced: $(UV) pyproject.toml uv.lock
	@dir="$$(scripts/python312-dir)" && \
		UV_PROJECT_ENVIRONMENT=$(PY312_VENV) $(UV) sync --frozen --quiet --python "$$dir/python3.12"
	@touch $@

.PHONY: test-py312
test-py312: $(PY312_VENV)/.synced ## the handlers' tests on Python 3.12 (Lambda's runtime)
	$(PY312_VENV)/bin/python -m pytest tests/handlers -q -p no:cacheprovider -n auto

# The fast tier: tests that start no local cloud and run no whole tool (those are marked slow).
CHECK_TESTS := tests/unit tests/asl tests/template tests/iam tests/handlers

.PHONY: check
check: lint tools ## the fast tier: lint, then the tests that start no local cloud and no whole tool (unit, state machines, template, IAM, handlers)
	$(RUN) pytest -q -p no:cacheprovider -n auto --dist worksteal --hypothesis-profile=quick -m "not slow" $(CHECK_TESTS)

.PHONY: test
# Every test, on three workers for every two cores: a module stays on one worker (its local cloud
# and story are shared by its tests). A worker computes most of the time and waits the rest (the
# scaled clock, the SAM CLI's polls, processes starting); a third worker per two cores uses those
# waits. Measured on two cores: 2 workers 19.8 min, 3 workers 15.9, 4 workers 16.0
# (benchmarks/results.md, "Test tiers").
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1; print(max(1, cores * 3 // 2))')
test: lint tools ## lint, then every test (and the handlers' tests again on Python 3.12)
	$(RUN) pytest -n $(TEST_WORKERS) --dist loadfile
	$(MAKE) --no-print-directory test-py312

.PHONY: demo
demo: install tools ## run the demo (the SAM CLI deploys a code change in it)
	$(RUN) safe-deploy demo

.PHONY: bench
bench: $(UV) ## run the benchmarks (slow; results go in the README)
	$(UV) sync --frozen --python 3.11 --group bench
	$(RUN) python benchmarks/run.py

.PHONY: clean
clean: ## remove environments and build output
	rm -rf $(TOOLS) $(VENV) $(PY312_VENV) node_modules .aws-sam .mypy_cache .ruff_cache .pytest_cache demo-output
