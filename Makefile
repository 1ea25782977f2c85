# Every target does its own set-up on a fresh machine: the venv and the install are
# created on first use (and refreshed when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test test-slow lint bench train-mnist clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/primer-serve --model-base-path models

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not slow"

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m loadtest.bench

train-mnist: $(STAMP)
	$(BIN)/primer-train mnist_dnn --data ../shared/data/mnist.npz --epochs 8 --name mnist_dnn --model-dir models

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache reports

# ----- gRPC / KServe v2 protobuf code (committed; `make test` fails when it is stale) -----
.PHONY: generate check-generated perf-analyzer
generate: $(STAMP)
	PYTHON=$(BIN)/python bash tools/generate_protos.sh

check-generated: $(STAMP)
	PYTHON=$(BIN)/python bash tools/check_generated.sh
