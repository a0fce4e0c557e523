# Two commands for a new user: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# dvc.yaml runs `python -m stages...`: the venv must come first on PATH.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export BENTOML_DO_NOT_TRACK := true

SAMPLE_DIR := data/sample
# The demo trains for real, on the generated sample, in a few minutes on 2 CPU cores.
DEMO_SET := -S classifier.epochs=8 -S sr.epochs=2 -S sr.patches_per_epoch=1024

.PHONY: venv demo test lint format proto clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

## demo: create the environment, generate the sample archives, run the whole pipeline on them
demo: venv
	set_args=$$(cnnpipe sample-data $(SAMPLE_DIR) --dvc-set-args) && \
	  dvc exp run $$set_args $(DEMO_SET)
	@echo
	dvc metrics show
	@echo "Models in models/, plots in plots/ and dvclive/. The data was GENERATED, not CIFAR-10/BSDS300."

## test: lint and run the test suite (includes a real `dvc repro` on tiny generated data)
test: venv lint
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## proto: regenerate the gRPC stubs in src/cnnpipe/v1/ from serving/proto/
proto: venv
	$(BIN)/python -m grpc_tools.protoc -I serving/proto --python_out=src --pyi_out=src --grpc_python_out=src \
	  serving/proto/cnnpipe/v1/inference.proto

clean-venv:
	rm -rf $(VENV)
