# Every target does its own set-up on a fresh machine: the venv and the install are
# created on first use (and refreshed when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test test-slow lint bench bench-peers bench-memory bench-edge train-mnist clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/primer-serve --model-base-path models

test: $(STAMP) deps-system
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -m "not slow"

test-slow: $(STAMP) deps-system
	PYTHON=$(BIN)/python bash loadtest/perf_analyzer.sh --install-only
	$(BIN)/pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP) deps-system
	$(BIN)/python -m loadtest.bench

# RSS while primer-serve swaps versions of a VGG16-sized model (docs/memory.md)
bench-memory: $(STAMP)
	$(BIN)/python -m loadtest.memory --load

# A normal client's p99 while 3,000 stalled partial requests hold connections (docs/edge.md)
bench-edge: $(STAMP)
	$(BIN)/python -m loadtest.edge_bench

# Triton (through PyTriton, which bundles tritonserver) in a virtualenv of its own: it needs
# numpy < 2. `make bench` stays free of it.
PEERS_VENV := .venv-peers
$(PEERS_VENV)/.installed: loadtest/peers-requirements.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/pip install --quiet -r loadtest/peers-requirements.txt
	touch $@

bench-peers: $(STAMP) deps-system $(PEERS_VENV)/.installed
	$(BIN)/python -m loadtest.peers --peer-python $(PEERS_VENV)/bin/python

train-mnist: $(STAMP)
	$(BIN)/primer-train mnist_dnn --data ../shared/data/mnist.npz --epochs 8 --name mnist_dnn --model-dir models

clean:
	rm -rf $(VENV) $(PEERS_VENV) .pytest_cache .ruff_cache reports

# ----- gRPC / KServe v2 protobuf code (committed; `make test` fails when it is stale) -----
.PHONY: generate check-generated perf-analyzer
generate: $(STAMP)
	PYTHON=$(BIN)/python bash tools/generate_protos.sh

check-generated: $(STAMP)
	PYTHON=$(BIN)/python bash tools/check_generated.sh

# ----- observability: system tools and the Locust load test -----------------------------------
.PHONY: deps-system loadtest

# promtool + prometheus (Debian's prometheus package) for the observability tests, wrk and
# h2load (nghttp2-client) for make bench and its tests; installed only when missing (sudo
# only when not root).
deps-system:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null \
	    || ! command -v wrk >/dev/null || ! command -v h2load >/dev/null; then \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	    prometheus wrk nghttp2-client; \
	fi
	@# chromium + its driver for the console's browser test (tests/service/protocols/test_console.py)
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	    chromium chromium-driver; \
	fi

LOADTEST_HOST ?= http://127.0.0.1:8501
LOADTEST_USERS ?= 32
LOADTEST_SPAWN_RATE ?= 8
LOADTEST_TIME ?= 60s
LOADTEST_ARGS ?=
# Headless Locust for LOADTEST_TIME against LOADTEST_HOST (a server on 127.0.0.1:8501 is
# started from models/ when none answers there); CSV and HTML reports land in reports/.
# Step load: LOCUST_SHAPE=step make loadtest. Model and task mix: LOADTEST_ARGS="--model
# mnist_dnn --mix instances=1,v2_infer=1" (see loadtest/locustfile.py).
loadtest: $(STAMP)
	@mkdir -p reports
	@ready() { $(BIN)/python -c "import sys, urllib.request; \
	  urllib.request.urlopen(sys.argv[1] + '/v2/health/ready', timeout=2)" $(LOADTEST_HOST) \
	  2>/dev/null; }; \
	server=""; \
	if ! ready; then \
	  echo "no server at $(LOADTEST_HOST): starting primer-serve (log: reports/loadtest-server.log)"; \
	  $(BIN)/primer-serve --model-base-path models --host 127.0.0.1 \
	    > reports/loadtest-server.log 2>&1 & server=$$!; \
	  trap 'kill $$server 2>/dev/null; wait $$server 2>/dev/null' EXIT; \
	  for i in $$(seq 180); do ready && break; sleep 1; done; \
	  ready || { echo "the server did not become ready"; exit 1; }; \
	fi; \
	$(BIN)/locust -f loadtest/locustfile.py --headless --host $(LOADTEST_HOST) \
	  -u $(LOADTEST_USERS) -r $(LOADTEST_SPAWN_RATE) -t $(LOADTEST_TIME) --stop-timeout 10 \
	  --csv reports/locust --html reports/locust.html --only-summary $(LOADTEST_ARGS)

# Triton's perf_analyzer (tritonclient 2.41.0's binary, unpacked under build/) against a
# fresh server: v2 gRPC, v2 HTTP and TF Serving gRPC, request counts checked against /metrics
perf-analyzer: $(STAMP)
	PYTHON=$(BIN)/python bash loadtest/perf_analyzer.sh
