# The two commands of HEQIS: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   ?= .venv
RKNN_VENV ?= .venv-rknn
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.installed

.PHONY: demo test lint install bench clean help rknn-env

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "HEQIS needs Python >= 3.10"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -c constraints.txt -e '.[research,dev]'
	@touch $@

install: $(STAMP)  ## create .venv and install heqis with its research and dev extras

# rknn-toolkit2 pins old numpy/onnx/torch: it gets its own venv, driven by `heqis convert --to rknn`.
# --no-deps first, then the pins it needs (its own torch<=2.4 pin would pull a multi-GB CUDA build).
$(RKNN_VENV)/.installed:
	test -x $(RKNN_VENV)/bin/python || $(PYTHON) -m venv $(RKNN_VENV)
	$(RKNN_VENV)/bin/python -m pip install --quiet --no-deps rknn-toolkit2==2.5.0
	$(RKNN_VENV)/bin/python -m pip install --quiet "numpy<=1.26.4" "onnx>=1.16.1,<=1.18.0" \
	    "protobuf>=4.21.6,<=4.25.4" psutil ruamel.yaml scipy tqdm opencv-python-headless fast-histogram \
	    "onnxruntime<1.23" "torch==2.13.0" "setuptools<81"
	$(RKNN_VENV)/bin/python -c "from rknn.api import RKNN"
	@touch $@

rknn-env: $(RKNN_VENV)/.installed  ## the separate venv with rknn-toolkit2 (RKNN conversion + simulator)

demo: $(STAMP)  ## run the whole chain on the bundled (synthetic) sample data and show the result
	$(BIN)/heqis demo

lint: $(STAMP)  ## ruff + the import-linter layering contract
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint rknn-env  ## lint, then the test suite (pytest exits non-zero when nothing is collected)
	HEQIS_RKNN_PYTHON=$(CURDIR)/$(RKNN_VENV)/bin/python HEQIS_REQUIRE_RKNN=1 \
	    HEQIS_WHEELHOUSE=$(CURDIR)/.heqis/wheelhouse $(BIN)/python -m pytest

bench: $(STAMP)  ## benchmarks: ours vs the peers, printed as ratios
	$(BIN)/python benchmarks/indicators.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/backtest.py
	$(BIN)/python benchmarks/backends.py
	$(BIN)/python benchmarks/watchdog.py
	$(BIN)/python benchmarks/data_import.py
	$(BIN)/python benchmarks/research_cycle.py

clean:  ## remove the venv and generated data
	rm -rf $(VENV) $(RKNN_VENV) heqis-data heqis-demo deploy_output .pytest_cache .ruff_cache build *.egg-info
