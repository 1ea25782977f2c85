#!/usr/bin/env bash
# Triton's perf_analyzer against primer-serve: KServe v2 gRPC (async), KServe v2 HTTP and
# TF Serving gRPC (--service-kind tfserving), and a check that its request counts match the
# server's own metrics. `make perf-analyzer` runs it; the slow test runs it with short windows.
#
# perf_analyzer comes from the tritonclient==2.41.0 wheel (bin/perf_analyzer; newer PyPI
# perf-analyzer wheels need a newer glibc than this machine has). It links libb64 (Debian's
# libb64-0d) and libcudart.so.12 (pip's nvidia-cuda-runtime-cu12), even without a GPU.
# Everything is unpacked under build/perf_analyzer/ (git-ignored); nothing enters the venv.
#
# `perf_analyzer.sh --install-only` only unpacks the tools (the test set-up step, so the slow
# test itself downloads nothing).
#
# Environment: MODEL (mnist_dnn), MODEL_BASE_PATH (models), CONCURRENCY (32),
# WINDOW_MS (5000), TFS_SHAPE (image:1,28,28: the tfserving kind needs the full input shape),
# PYTHON (.venv/bin/python), PA_DIR (build/perf_analyzer).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
PA_DIR="${PA_DIR:-build/perf_analyzer}"
MODEL="${MODEL:-mnist_dnn}"
MODEL_BASE_PATH="${MODEL_BASE_PATH:-models}"
CONCURRENCY="${CONCURRENCY:-32}"
WINDOW_MS="${WINDOW_MS:-5000}"
PA="$PA_DIR/bin/perf_analyzer"

install_perf_analyzer() {
    [[ -x "$PA" ]] && return
    mkdir -p "$PA_DIR/wheels"
    "$PYTHON" -m pip download --quiet --no-deps -d "$PA_DIR/wheels" \
        "tritonclient==2.41.0" "nvidia-cuda-runtime-cu12>=12,<13"
    "$PYTHON" - "$PA_DIR" <<'PY'
import glob, os, sys, zipfile
out = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{out}/wheels/tritonclient-2.41.0-*.whl")[0])
os.makedirs(f"{out}/bin", exist_ok=True)
with open(f"{out}/bin/perf_analyzer", "wb") as target:
    target.write(wheel.read("tritonclient-2.41.0.data/data/bin/perf_analyzer"))
os.chmod(f"{out}/bin/perf_analyzer", 0o755)
cuda = zipfile.ZipFile(glob.glob(f"{out}/wheels/nvidia_cuda_runtime_cu12-*.whl")[0])
os.makedirs(f"{out}/lib", exist_ok=True)
with open(f"{out}/lib/libcudart.so.12", "wb") as target:
    target.write(cuda.read("nvidia/cuda_runtime/lib/libcudart.so.12"))
PY
    if ! ldconfig -p | grep -q libb64.so.0d; then
        apt-get install -y -qq libb64-0d >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get install -y -qq libb64-0d; }
    fi
}

free_port() { "$PYTHON" -c 'from loadtest.processes import free_port; print(free_port())'; }

# requests the server counted for MODEL over one protocol label: "<ok> <failed>"
server_counts() {
    curl -sf "http://127.0.0.1:$REST_PORT/metrics" | awk -v model="$MODEL" -v proto="$1" '
        $1 ~ /^primer_requests_total\{/ && index($1, "model=\"" model "\"") \
            && index($1, "protocol=\"" proto "\"") {
            if (index($1, "code=\"OK\"")) ok += $2; else failed += $2 }
        END { printf "%d %d\n", ok, failed }'
}

# run_case NAME PROTOCOL_LABEL PERF_ANALYZER_ARGS... ; fails when the counts disagree
run_case() {
    local name="$1" label="$2"; shift 2
    local log="$PA_DIR/$name.log"
    read -r ok_before failed_before < <(server_counts "$label")
    LD_LIBRARY_PATH="$PA_DIR/lib" "$PA" -m "$MODEL" --concurrency-range "$CONCURRENCY" \
        --measurement-interval "$WINDOW_MS" --input-data zero -s 40 "$@" >"$log" 2>&1 \
        || { cat "$log"; echo "perf_analyzer failed for $name" >&2; return 1; }
    read -r ok_after failed_after < <(server_counts "$label")
    local client server_window
    client=$(awk '/Client:/{c=1} c && /Request count:/{print $3; exit}' "$log")
    server_window=$(awk '/Server:/{s=1} s && /Inference count:/{print $3; exit}' "$log")
    local throughput
    throughput=$(awk '/Throughput:/{print $2; exit}' "$log")
    echo "$name: $throughput infer/s at concurrency $CONCURRENCY; client counted $client" \
         "in the measured windows; server metrics counted $((ok_after - ok_before)) OK and" \
         "$((failed_after - failed_before)) failed over the whole run" \
         "${server_window:+(server statistics for the measured windows: $server_window)}"
    [[ $((failed_after - failed_before)) -eq 0 ]] || { echo "server counted failures" >&2; return 1; }
    [[ $((ok_after - ok_before)) -ge $client ]] || { echo "server counted fewer requests" >&2; return 1; }
    # The window edges can split a request (counted by one side only): at most one per
    # client slot, so the two counts may differ by no more than the concurrency.
    if [[ -n "$server_window" ]]; then
        local gap=$((server_window - client)); gap=${gap#-}
        [[ $gap -le $CONCURRENCY ]] || {
            echo "perf_analyzer's client and server counts differ by $gap" >&2; return 1; }
    fi
}

install_perf_analyzer
if [[ "${1:-}" == "--install-only" ]]; then
    echo "perf_analyzer is at $PA"
    exit 0
fi
REST_PORT="$(free_port)"
GRPC_PORT="$(free_port)"
TF_CPP_MIN_LOG_LEVEL=2 "$PYTHON" -m service --model-base-path "$MODEL_BASE_PATH" \
    --host 127.0.0.1 --rest-port "$REST_PORT" --grpc-port "$GRPC_PORT" \
    --poll-interval-s 0 --log-level WARNING &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$REST_PORT/v2/health/ready" >/dev/null && break
    kill -0 $SERVER 2>/dev/null || { echo "the server exited" >&2; exit 1; }
    sleep 0.5
done

run_case v2_grpc grpc_v2 -u "127.0.0.1:$GRPC_PORT" -i grpc --async
run_case v2_http rest_v2 -u "127.0.0.1:$REST_PORT" -i http
run_case tfserving_grpc grpc_tfserving -u "127.0.0.1:$GRPC_PORT" -i grpc \
    --service-kind tfserving --shape "${TFS_SHAPE:-image:1,28,28}"
echo "perf_analyzer: request counts match the server's metrics"
