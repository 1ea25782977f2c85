"""Closed-loop gRPC load with h2load, nghttp2's C HTTP/2 load generator (wrk's HTTP/2 peer).

gRPC is HTTP/2: a unary call is a POST to ``/<package>.<Service>/<Method>`` with
``content-type: application/grpc`` whose body is the serialized request behind a 5-byte
prefix (a compression flag and a big-endian length). h2load replays such a body over a few
multiplexed connections and logs each response's HTTP status and duration. A gRPC failure
still comes back as HTTP 200 with a non-zero ``grpc-status`` trailer, which h2load does not
read, so callers count failures on the server (``primer_requests_total`` by code) as the
benchmark does. A C client keeps the load generator's CPU small, as wrk does for REST: on
a 2-core machine a Python gRPC client takes CPU the server would otherwise get.

Example::

    from loadtest.grpc_clients import predict_request_bytes
    from loadtest.h2load import run_h2load_grpc
    result = run_h2load_grpc("127.0.0.1:8500", "/tensorflow.serving.PredictionService/Predict",
                             predict_request_bytes("mnist_dnn", "image", digit),
                             concurrency=32, seconds=10)
"""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from loadtest.wrk import LoadResult


def grpc_frame(message: bytes) -> bytes:
    """One uncompressed gRPC length-prefixed message."""
    return b"\0" + struct.pack(">I", len(message)) + message


def require_h2load() -> str:
    path = shutil.which("h2load")
    if path is None:
        raise SystemExit(
            "h2load is not installed: run `make deps-system` (apt-get install nghttp2-client)"
        )
    return path


def connection_split(concurrency: int, connections: int) -> tuple[int, int]:
    """(connections, streams per connection) whose product is exactly ``concurrency``."""
    connections = max(1, min(connections, concurrency))
    while concurrency % connections:
        connections -= 1
    return connections, concurrency // connections


def run_h2load_grpc(
    target: str,
    method: str,
    message: bytes,
    *,
    concurrency: int,
    seconds: float,
    warmup_s: float = 1.0,
    connections: int = 2,
) -> LoadResult:
    """``concurrency`` unary calls of ``method`` always in flight for ``seconds``.

    Args:
        target: ``host:port`` of the gRPC server (plaintext).
        method: the full method path, e.g. ``/tensorflow.serving.PredictionService/Predict``.
        message: the serialized request message.
        concurrency: calls in flight, multiplexed over ``connections`` HTTP/2 connections
            (as a gRPC channel multiplexes its calls).
        seconds: measured duration, after ``warmup_s`` of unmeasured load.

    Returns:
        Requests, latency percentiles and ``errors``: responses other than HTTP 200, and
        streams that broke or timed out (gRPC status codes are counted by the server; see
        the module doc).
    """
    conns, streams = connection_split(concurrency, connections)
    duration_s = max(1, math.ceil(seconds))
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        body, log = Path(tmp) / "request.grpc", Path(tmp) / "requests.log"
        body.write_bytes(grpc_frame(message))
        command = [
            require_h2load(),
            "-c",
            str(conns),
            "-m",
            str(streams),
            "-t",
            "1",
            "-D",
            str(duration_s),
            f"--warm-up-time={max(0, round(warmup_s * 1e3))}ms",
            "-d",
            str(body),
            "--log-file",
            str(log),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            f"http://{target}{method}",
        ]
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + warmup_s + 60
        )
        if completed.returncode:
            raise RuntimeError(
                f"h2load failed ({completed.returncode}): "
                f"{(completed.stderr or completed.stdout).strip()[-500:]}"
            )
        rows = (
            np.loadtxt(log, dtype=np.int64, ndmin=2)
            if log.stat().st_size
            else np.empty((0, 3), np.int64)
        )
    if not len(rows):
        raise RuntimeError(
            f"h2load completed no requests against {target}: {completed.stdout.strip()[-500:]}"
        )
    broken = sum(_field(completed.stdout, "requests:", name) for name in ("errored", "timeout"))
    ok = rows[:, 1] == 200
    durations_ms = rows[ok, 2] / 1e3
    p50, p90, p99 = np.percentile(durations_ms, [50, 90, 99]) if durations_ms.size else (0, 0, 0)
    return LoadResult(
        concurrency=concurrency,
        requests=int(ok.sum()),
        errors=int((~ok).sum()) + broken,
        seconds=float(duration_s),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
    )


def _field(report: str, line_prefix: str, name: str) -> int:
    """A count from h2load's summary, e.g. ``requests: 10 total, 10 started, ...``."""
    line = next(line for line in report.splitlines() if line.startswith(line_prefix))
    for part in line.removeprefix(line_prefix).split(","):
        value, _, label = part.strip().partition(" ")
        if label == name:
            return int(value)
    raise ValueError(f"h2load reported no {name!r} in {line!r}")
