"""``make bench``: the serving benchmark, every figure measured in one run on this machine.

1. The raw in-process ceiling of each SavedModel signature at batch sizes 1..N.
2. ``primer-serve`` under closed-loop load at each concurrency: wrk for REST, h2load (also
   C; ``--grpc-client python`` for grpc.aio processes instead) for gRPC.
3. A naive FastAPI endpoint calling the same signature once per request, same load.
4. The protocol floor (``loadtest.floor_server``): the same REST and gRPC stacks answering
   every request at once without any work, under the same load at the top concurrency.
5. The mnist_dnn protocols head to head at the top concurrency: interleaved rounds that run
   each protocol, and each protocol's floor, for a few seconds in turn. This machine's speed
   drifts by ±15% over minutes, so stage 2's figures, taken minutes apart, can rank two close
   protocols either way (and stage 4's floor moves with the drift too); the interleaved
   rounds expose them to the same drift and give each a per-round ratio to REST JSON and a
   per-round fraction of its floor.

Models: the shipped ``mnist_dnn`` (JSON instances over TF Serving REST, binary tensor data
over KServe v2 REST, ``tensor_content`` over TF Serving gRPC Predict and raw contents over
v2 ModelInfer) and a random-init ``resnet50`` exported now (JPEG bytes as b64, and JSON
floats). Prints items/s, p50/p99, mean formed batch size, efficiency (served items/s ÷ raw
best-batch items/s), the ratio to the naive baseline and, for mnist_dnn, the fraction of its
protocol's floor; writes a JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

from loadtest.charts import bench_chart
from loadtest.processes import free_port, running
from loadtest.reports import write_report
from loadtest.scenarios import (
    ROOT,
    SERVER_CONFIG,
    Scenario,
    naive_command,
    prepare_models,
    serve_command,
    v2_binary_scenario,
    write_payloads,
)
from loadtest.stages import (
    FLOOR_SCENARIOS,
    GRPC_ENCODINGS,
    GRPC_SCENARIOS,
    HEAD_TO_HEAD_BASELINE,
    drive,
    drive_floor,
    drive_grpc,
    drive_head_to_head,
    floor_command,
    floor_loads,
    raw_ceiling,
)


def tensor_content_server(workdir: Path, repo: Path, port: int, grpc_port: int) -> list[str]:
    """The command of a second server over mnist_dnn alone that answers TF Serving Predict in
    ``tensor_content`` (TF Serving's opt-in encoding), for the head-to-head stage."""
    models = workdir / "tensor_content_models"
    models.mkdir(exist_ok=True)
    if not (models / "mnist_dnn").exists():  # a copy: the server refuses links leading out
        shutil.copytree(repo / "mnist_dnn", models / "mnist_dnn")
    config = workdir / "tensor_content.yaml"
    config.write_text(
        "enable_serialization_as_tensor_content: true\nbatching: {max_queue_size: 1024}\n"
    )
    return serve_command(models, port, grpc_port, config)


def served_batch_size(items_per_s: dict[int, float], concurrency: int) -> int:
    """The resnet50 ``max_batch_size`` to serve: the best raw batch size among those of at
    most a quarter of the top concurrency.

    Larger batches leave too few requests to fill the next batch while one runs, so they
    run lock-step: a run that served batches of up to 32 at c=32 (its raw stage had 48.2
    items/s at 32 against 46.3 at 8, a plateau settled by noise) halved the resnet rows.
    """
    limit = max(1, concurrency // 4)
    allowed = {size: rate for size, rate in items_per_s.items() if size <= limit} or items_per_s
    return max(allowed, key=allowed.get)


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """Efficiency, naive ratios and fractions of the protocol floor for every served run."""
    summary: dict[str, Any] = {}
    for name, runs in report["served"].items():
        model = report["scenarios"].get(name, {"model": "mnist_dnn"})["model"]
        ceiling = max(report["raw_ceiling"][model].values())
        naive = {r["concurrency"]: r for r in report["naive"].get(name, [])}
        for run in runs:
            key = f"{name}@c{run['concurrency']}"
            entry = {
                "requests_per_s": run["requests_per_s"],
                "efficiency": round(run["requests_per_s"] / ceiling, 3),
                "mean_batch_size": run.get("mean_batch_size"),
            }
            if run["concurrency"] in naive and naive[run["concurrency"]]["requests_per_s"]:
                entry["ratio_to_naive"] = round(
                    run["requests_per_s"] / naive[run["concurrency"]]["requests_per_s"], 2
                )
            floor = report.get("floor", {}).get(FLOOR_SCENARIOS.get(name, ""))
            if floor and floor["concurrency"] == run["concurrency"] and floor["requests_per_s"]:
                entry["fraction_of_floor"] = round(
                    run["requests_per_s"] / floor["requests_per_s"], 3
                )
            summary[key] = entry
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=10.0, help="per mnist run")
    parser.add_argument("--resnet-seconds", type=float, default=15.0, help="per resnet run")
    parser.add_argument("--raw-seconds", type=float, default=2.0, help="per batch size")
    parser.add_argument(
        "--mnist-model",
        default=str(ROOT / "models" / "mnist_dnn"),
        help="the mnist_dnn model folder (holding versions)",
    )
    parser.add_argument(
        "--grpc-client",
        choices=("h2load", "python"),
        default="h2load",
        help="gRPC load generator: h2load (C) or grpc.aio processes",
    )
    parser.add_argument(
        "--head-to-head-rounds",
        type=int,
        default=4,
        help="interleaved rounds of the mnist protocols (0 to skip)",
    )
    parser.add_argument(
        "--head-to-head-seconds", type=float, default=4.0, help="per protocol per round"
    )
    parser.add_argument(
        "--runtimes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the runtimes stage: TFLite / ONNX Runtime variants (loadtest.runtimes)",
    )
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench.json"))
    args = parser.parse_args(argv)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    with tempfile.TemporaryDirectory(prefix="primer-bench-") as tmp:
        workdir = Path(tmp)
        print("preparing models and payloads ...", flush=True)
        repo = prepare_models(workdir, Path(args.mnist_model))
        bodies = write_payloads(workdir)
        scenarios = [
            Scenario("mnist_json", "mnist_dnn", bodies["mnist_json"], args.seconds, True),
            v2_binary_scenario(workdir, args.seconds),
            Scenario("resnet_jpeg", "resnet50", bodies["resnet_jpeg"], args.resnet_seconds, True),
            Scenario(
                "resnet_floats", "resnet50", bodies["resnet_floats"], args.resnet_seconds, False
            ),
        ]
        version_dirs = {"mnist_dnn": repo / "mnist_dnn" / "1", "resnet50": repo / "resnet50" / "1"}
        print("raw in-process ceiling ...", flush=True)
        raw = {
            "mnist_dnn": raw_ceiling(
                version_dirs["mnist_dnn"], [1, 8, 32, 64, 128, 256], args.raw_seconds
            ),
            "resnet50": raw_ceiling(
                version_dirs["resnet50"], [1, 2, 4, 8, 16, 32], args.raw_seconds
            ),
        }
        for model, figures in raw.items():
            print(f"  {model:10s} items/s by batch size: {figures}", flush=True)
        resnet_batch = served_batch_size(raw["resnet50"], max(concurrencies))
        config = workdir / "server.yaml"
        config.write_text(SERVER_CONFIG % {"resnet_batch": resnet_batch})

        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "raw_ceiling": raw,
            "served": {},
            "naive": {},
            "floor": {},
            "head_to_head": {},
            "scenarios": {s.name: {"model": s.model, "seconds": s.seconds} for s in scenarios},
        }
        report["scenarios"].update(
            {name: {"model": "mnist_dnn", "seconds": args.seconds} for name in GRPC_SCENARIOS}
        )
        for name, encoding in GRPC_ENCODINGS.items():
            report["scenarios"].setdefault(name, {"model": "mnist_dnn", "seconds": args.seconds})[
                "encoding"
            ] = encoding
            print(f"  {name}: responses in {encoding}", flush=True)
        port, grpc_port = free_port(), free_port()
        print("primer-serve ...", flush=True)
        with running(serve_command(repo, port, grpc_port, config), port):
            metrics_url = f"http://127.0.0.1:{port}/metrics"
            for s in scenarios:
                report["served"][s.name] = drive(s.url(port), s, concurrencies, metrics_url)
            report["served"].update(
                drive_grpc(
                    f"127.0.0.1:{grpc_port}",
                    concurrencies,
                    args.seconds,
                    metrics_url,
                    args.grpc_client,
                )
            )
            if args.head_to_head_rounds > 0:
                print(
                    f"mnist protocols head to head (c={max(concurrencies)}, "
                    f"{args.head_to_head_rounds} interleaved rounds) ...",
                    flush=True,
                )
                other_port, other_grpc = free_port(), free_port()
                other = tensor_content_server(workdir, repo, other_port, other_grpc)
                floor_rest, floor_grpc = free_port(), free_port()
                with (
                    running(other, other_port),
                    running(floor_command(floor_rest, floor_grpc), floor_rest, health_path="/"),
                ):
                    report["head_to_head"] = drive_head_to_head(
                        port,
                        grpc_port,
                        [s for s in scenarios if s.model == "mnist_dnn"],
                        max(concurrencies),
                        args.head_to_head_rounds,
                        args.head_to_head_seconds,
                        metrics_url,
                        args.grpc_client,
                        (other_grpc, f"http://127.0.0.1:{other_port}/metrics"),
                        floor_loads(
                            floor_rest,
                            floor_grpc,
                            max(concurrencies),
                            args.head_to_head_seconds,
                            bodies["mnist_json"],
                        ),
                    )
        for s in (s for s in scenarios if s.naive):
            print(f"naive FastAPI baseline ({s.model}) ...", flush=True)
            naive_port = free_port()
            command, env = naive_command(version_dirs[s.model], naive_port)
            with running(command, naive_port, env=env, health_path="/docs"):
                report["naive"][s.name] = drive(s.url(naive_port), s, concurrencies, None)
        print("protocol floor (the same stacks answering without work) ...", flush=True)
        report["floor"] = drive_floor(max(concurrencies), args.seconds, bodies["mnist_json"])
        if args.runtimes:
            from loadtest.runtimes import prepare_variants, run_runtimes

            print("runtimes (variants of mnist_dnn, sign_cnn and resnet50) ...", flush=True)
            prepare_variants(repo)
            report["runtimes"] = run_runtimes(
                repo,
                bodies["resnet_jpeg"],
                raw_seconds=args.raw_seconds,
                seconds=args.resnet_seconds,
                concurrency=max(concurrencies),
                threads=2,
            )

    report["summary"] = summarize(report)
    print("\nsummary (efficiency = served items/s / raw best-batch items/s):")
    for key, entry in report["summary"].items():
        print(f"  {key:22s} {json.dumps(entry)}")
    for name, entry in report["head_to_head"].get("protocols", {}).items():
        print(
            f"  head to head {name:22s} median {entry['median_requests_per_s']} req/s, "
            f"median ratio to {HEAD_TO_HEAD_BASELINE} {entry['median_ratio']}"
        )
    for name, entry in report["head_to_head"].get("floor_fractions", {}).items():
        print(f"  head to head {name:22s} median fraction of its floor {entry['median_fraction']}")
    out = write_report(args.out, report)
    bench_chart(report, out.with_suffix(".png"))
    print(f"\nreport written to {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
