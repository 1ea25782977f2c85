"""p99 with the payload log on (every request logged) against off, in one run.

Two servers on the shipped models, one logging every request to a temporary folder and one
not, take interleaved wrk rounds at the same concurrency; the report is each round's p99
and the median ratio on/off. Bounded: ``--rounds`` x 2 x ``--seconds`` of load.

    python -m loadtest.payload_log_bench --rounds 3 --seconds 5 --concurrency 32
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from loadtest.processes import free_port, running
from loadtest.wrk import run_wrk

REPO_ROOT = Path(__file__).resolve().parent.parent
MNIST_NPZ = REPO_ROOT.parent / "shared" / "data" / "mnist.npz"


def _server(port: int) -> list[str]:
    return [
        sys.executable, "-m", "service", "--model-base-path", str(REPO_ROOT / "models"),
        "--rest-port", str(port), "--grpc-port", str(free_port()), "--host", "127.0.0.1",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    digit = np.load(MNIST_NPZ)["x_test"][:1].astype(np.float32) / 255.0
    with tempfile.TemporaryDirectory() as scratch:
        body = Path(scratch) / "body.json"
        body.write_text(json.dumps({"instances": digit.tolist()}))
        off_port, on_port = free_port(), free_port()
        logging_env = {
            "PRIMER_EVALUATION__PAYLOAD_LOG_DIR": str(Path(scratch) / "log"),
            "PRIMER_EVALUATION__PAYLOAD_LOG_RATE": "1.0",
        }
        p99: dict[str, list[float]] = {"off": [], "on": []}
        with (
            running(_server(off_port), off_port),
            running(_server(on_port), on_port, env=logging_env),
        ):
            for _ in range(args.rounds):
                for name, port in (("off", off_port), ("on", on_port)):
                    url = f"http://127.0.0.1:{port}/v1/models/mnist_dnn:predict"
                    result = run_wrk(url, body, concurrency=args.concurrency, seconds=args.seconds)
                    p99[name].append(result.p99_ms)
                    print(f"{name}: p99 {result.p99_ms:.2f} ms, {result.requests_per_s:.0f} req/s")
            logged = sum(1 for path in (Path(scratch) / "log").glob("*.jsonl") for _ in path.open())
    ratios = [on / off for on, off in zip(p99["on"], p99["off"], strict=True)]
    print(
        json.dumps(
            {"p99_ms": p99, "ratio_on_off": ratios, "median_ratio": statistics.median(ratios),
             "records_logged": logged}
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
