"""The gRPC front process against grpc.aio inline: two servers at once, interleaved rounds.

    .venv/bin/python -m loadtest.grpc_front_ab --rounds 3 --seconds 5

Serves the shipped mnist_dnn twice from this checkout, one server with
``grpc_front_process: true`` and one with ``false``, and drives TF Serving gRPC Predict
(h2load) and REST JSON (wrk) on each at c=1 and c=32, in interleaved rounds (each round
starts one load further along). Per round: front ÷ inline req/s at c=32 and p50 at c=1, for
both protocols; REST shows what the front costs a protocol that does not use it. Writes
``reports/grpc_front_ab.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from loadtest.grpc_clients import predict_request_bytes
from loadtest.h2load import run_h2load_grpc
from loadtest.processes import free_port, running
from loadtest.reports import measure_and_report
from loadtest.scenarios import ROOT, mnist_digit, serve_command, write_payloads
from loadtest.stages import head_to_head
from loadtest.wrk import run_wrk

PREDICT = "/tensorflow.serving.PredictionService/Predict"
MODES = {"front": True, "inline": False}


def summarize(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per protocol: front ÷ inline req/s at c=32 and p50 at c=1, per round and median."""
    summary: dict[str, Any] = {}
    for protocol in ("grpc", "rest"):
        entry: dict[str, Any] = {}
        for metric, concurrency in (("requests_per_s", 32), ("p50_ms", 1)):
            front = rows[f"front_{protocol}_c{concurrency}"]
            inline = rows[f"inline_{protocol}_c{concurrency}"]
            ratios = [
                round(f[metric] / i[metric], 3) if i[metric] else 0.0
                for f, i in zip(front, inline, strict=True)
            ]
            entry[f"{metric}_c{concurrency}"] = {
                "front": [row[metric] for row in front],
                "inline": [row[metric] for row in inline],
                "front_over_inline": ratios,
                "median_front_over_inline": round(statistics.median(ratios), 3),
            }
        summary[protocol] = entry
    return summary


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="primer-front-ab-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        body = write_payloads(work)["mnist_json"]
        message = predict_request_bytes("mnist_dnn", "image", mnist_digit())
        loads = {}
        for mode, front in MODES.items():
            config = work / f"{mode}.yaml"
            config.write_text(
                f"batching: {{max_queue_size: 1024}}\ngrpc_front_process: {str(front).lower()}\n"
            )
            rest, grpc = free_port(), free_port()
            command = serve_command(Path(args.models).resolve(), rest, grpc, config)
            print(f"starting primer-serve (grpc_front_process: {front}) ...", flush=True)
            stack.enter_context(running(command, rest))
            url = f"http://127.0.0.1:{rest}/v1/models/mnist_dnn:predict"
            for c in (1, 32):
                loads[f"{mode}_grpc_c{c}"] = lambda g=grpc, c=c: run_h2load_grpc(
                    f"127.0.0.1:{g}",
                    PREDICT,
                    message,
                    concurrency=c,
                    seconds=args.seconds,
                    connections=min(2, c),
                ).to_dict()
                loads[f"{mode}_rest_c{c}"] = lambda u=url, c=c: run_wrk(
                    u, body, concurrency=c, seconds=args.seconds
                ).to_dict()
        print(f"{args.rounds} interleaved rounds of {args.seconds:g} s ...", flush=True)
        rows = head_to_head(loads, args.rounds)
    return {"rows": rows, "summary": summarize(rows)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", default=str(ROOT / "reports" / "grpc_front_ab.json"))
    return measure_and_report(measure, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
