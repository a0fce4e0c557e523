# Two commands for a new user: `make demo` and `make test`; then `make serve` (see README.md).
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

.PHONY: venv demo serve test test-fast lint typecheck format proto clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

## demo: create the environment, generate the sample archives, run the whole pipeline on them as a
## DVC experiment in a temporary copy: params.yaml and the workspace stay as they are.
demo: venv
	set_args=$$(cnnpipe sample-data $(SAMPLE_DIR) --dvc-set-args) && \
	  dvc exp run --temp -C $(SAMPLE_DIR) $$set_args $(DEMO_SET)
	@echo
	dvc exp show --md --drop '.*' --keep 'Experiment|accuracy$$|accuracy_tta|.*psnr_model|.*psnr_bicubic'
	@echo "The demo is the experiment above (the data was GENERATED, not CIFAR-10/BSDS300); your params.yaml is unchanged."
	@echo "Serve its models: 'make serve' (both servers; params.yaml stays as it is). 'dvc exp apply NAME' brings them into the workspace."

HTTP_PORT ?= 3000
GRPC_PORT ?= 50051
## serve: both servers (HTTP with the page at /ui, gRPC) on models/ or, without them, the newest DVC
## experiment's (`make demo`'s); EXP=name picks one. Touches neither params.yaml nor dvc.lock; Ctrl-C stops both.
serve: venv
	$(BIN)/python -m serving.up $(if $(EXP),--exp $(EXP)) --http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT)

# Test processes at once (pytest-xdist). Each takes whole files, so a file's servers and fixtures start
# once; tests marked serial (timings a neighbour's load would skew) run alone afterwards.
# TEST_WORKERS=0: no worker processes; each pytest runs its tests itself, in file order.
TEST_WORKERS ?= 2
PARALLEL := -n $(TEST_WORKERS) --dist loadfile

## test: lint, type-check and run the whole test suite (includes a real `dvc repro` on tiny generated data)
# Both runs share one folder of builds that tests only read (tests/once.py): the tiny `dvc repro` is made once.
test: venv lint typecheck
	shared=$$(mktemp -d -t cnnpipe-tests-shared-XXXXXX) && trap 'rm -rf "$$shared"' EXIT && \
	  CNNPIPE_TEST_SHARED=$$shared $(BIN)/python -m pytest $(PARALLEL) -m "not serial" && \
	  CNNPIPE_TEST_SHARED=$$shared $(BIN)/python -m pytest -m serial

## test-fast: the inner loop: lint and the tests not marked slow (no servers, no dvc repro)
test-fast: venv lint
	$(BIN)/python -m pytest $(PARALLEL) -m "not slow"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## proto: regenerate the gRPC stubs in src/cnnpipe/serve/v1/ from serving/proto/
proto: venv
	$(BIN)/python -m grpc_tools.protoc -I serving/proto --python_out=src --pyi_out=src --grpc_python_out=src \
	  serving/proto/cnnpipe/serve/v1/inference.proto

clean-venv:
	rm -rf $(VENV)
