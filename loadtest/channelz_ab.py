"""What grpc core's channelz (and the connection sampler reading it) costs gRPC Predict.

Two primer-serve processes serve the shipped mnist_dnn, one with ``grpc_connection_metrics``
on (channelz on, the sampler reading it every second), one with it off; both are warmed for
5 s. Interleaved rounds
drive TF Serving gRPC Predict at ``--concurrency`` against each in turn (A, B, A, B, ...);
per round, req/s on ÷ off and p50 on ÷ off, and their medians. Writes
``reports/channelz_ab.json``.

    python -m loadtest.channelz_ab --rounds 6 --seconds 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from loadtest.grpc_clients import predict_request_bytes, run_grpc_load
from loadtest.processes import free_port, running
from loadtest.scenarios import ROOT, mnist_digit, serve_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--out", default=str(ROOT / "reports" / "channelz_ab.json"))
    args = parser.parse_args(argv)
    body = predict_request_bytes("mnist_dnn", "image", mnist_digit())
    rows = []
    with tempfile.TemporaryDirectory(prefix="channelz-ab-") as tmp, ExitStack() as stack:
        targets = {}
        for name, on in (("on", True), ("off", False)):
            config = Path(tmp) / f"{name}.yaml"
            config.write_text(f"grpc_connection_metrics: {str(on).lower()}\n")
            port, grpc_port = free_port(), free_port()
            stack.enter_context(
                running(serve_command(ROOT / "models", port, grpc_port, config), port)
            )
            targets[name] = f"127.0.0.1:{grpc_port}"
        for target in targets.values():  # both warm before any round is timed
            run_grpc_load(target, "tfserving", body, concurrency=args.concurrency, seconds=5)
        for index in range(args.rounds):
            order = ("on", "off") if index % 2 == 0 else ("off", "on")
            results = {
                name: run_grpc_load(
                    targets[name],
                    "tfserving",
                    body,
                    concurrency=args.concurrency,
                    seconds=args.seconds,
                )
                for name in order
            }
            row = {
                "on_rps": round(results["on"].requests_per_s, 1),
                "off_rps": round(results["off"].requests_per_s, 1),
                "rps_ratio": round(results["on"].requests_per_s / results["off"].requests_per_s, 3),
                "p50_ratio": round(results["on"].p50_ms / results["off"].p50_ms, 3),
                "errors": results["on"].errors + results["off"].errors,
            }
            rows.append(row)
            print(f"round {index + 1}: {json.dumps(row)}", flush=True)
    report = {
        "concurrency": args.concurrency,
        "rounds": rows,
        "median_rps_ratio": statistics.median(row["rps_ratio"] for row in rows),
        "median_p50_ratio": statistics.median(row["p50_ratio"] for row in rows),
    }
    print(
        f"channelz on / off: req/s {report['median_rps_ratio']}, p50 {report['median_p50_ratio']}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return 0 if not any(row["errors"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
