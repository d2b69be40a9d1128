# The two commands of HEQIS: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.installed

.PHONY: demo test lint install bench clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "HEQIS needs Python >= 3.10"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

install: $(STAMP)  ## create .venv and install heqis with its dev extras

demo: $(STAMP)  ## run the whole chain on the bundled (synthetic) sample data and show the result
	$(BIN)/heqis demo

lint: $(STAMP)  ## ruff + the import-linter layering contract
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint  ## lint, then the test suite (pytest exits non-zero when nothing is collected)
	$(BIN)/python -m pytest

bench: $(STAMP)  ## benchmarks: ours vs the peers, printed as ratios
	$(BIN)/python benchmarks/indicators.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/backtest.py

clean:  ## remove the venv and generated data
	rm -rf $(VENV) heqis-data heqis-demo .pytest_cache .ruff_cache build *.egg-info
