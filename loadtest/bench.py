"""``make bench``: the serving benchmark, every figure measured in one run on this machine.

1. The raw in-process ceiling of each SavedModel signature at batch sizes 1..N.
2. ``primer-serve`` under closed-loop load at each concurrency: wrk for REST, h2load (also
   C; ``--grpc-client python`` for grpc.aio processes instead) for gRPC.
3. A naive FastAPI endpoint calling the same signature once per request, same load.
4. The protocol floor (``loadtest.floor_server``): the same REST and gRPC stacks answering
   every request at once without any work, under the same load at the top concurrency.
5. The mnist_dnn protocols head to head at the top concurrency: interleaved rounds that run
   each protocol for a few seconds in turn. This machine's speed drifts by ±15% over minutes,
   so stage 2's figures, taken minutes apart, can rank two close protocols either way; the
   interleaved rounds expose them to the same drift and give each a per-round ratio to REST
   JSON.

Models: the shipped ``mnist_dnn`` (JSON instances over TF Serving REST, binary tensor data
over KServe v2 REST, ``tensor_content`` over TF Serving gRPC Predict and raw contents over
v2 ModelInfer) and a random-init ``resnet50`` exported now (JPEG bytes as b64, and JSON
floats). Prints items/s, p50/p99, mean formed batch size, efficiency (served items/s ÷ raw
best-batch items/s), the ratio to the naive baseline and, for mnist_dnn, the fraction of its
protocol's floor; writes a JSON report.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.grpc_clients import (
    METHODS,
    infer_request_bytes,
    predict_request_bytes,
    run_grpc_load,
)
from loadtest.h2load import run_h2load_grpc
from loadtest.processes import failed_calls, free_port, metric_sum, request_codes, running
from loadtest.wrk import LoadResult, run_wrk

ROOT = Path(__file__).resolve().parent.parent
MNIST_NPZ = ROOT.parent / "shared" / "data" / "mnist.npz"
SERVER_CONFIG = """
batching: {max_queue_size: 1024}
models:
  resnet50:
    batching: {max_batch_size: %(resnet_batch)d, batch_timeout_ms: 20.0, max_queue_size: 256}
"""


@dataclass(frozen=True)
class Scenario:
    """One model + payload form driven through the server (and the naive baseline)."""

    name: str
    model: str
    body: Path
    seconds: float
    naive: bool
    endpoint: str = ""
    """The path posted to; TF Serving's ``/v1/models/<model>:predict`` when empty."""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}{self.endpoint or f'/v1/models/{self.model}:predict'}"

    def run(self, url: str, concurrency: int, seconds: float) -> LoadResult:
        """Closed-loop wrk posts of this scenario's body (and headers) to ``url``."""
        return run_wrk(
            url,
            self.body,
            concurrency=concurrency,
            seconds=seconds,
            content_type=self.content_type,
            headers=dict(self.headers),
        )


# ----- models and payloads ----------------------------------------------------------------
def prepare_models(workdir: Path, mnist_model: Path) -> Path:
    """A model repository with the shipped mnist_dnn and a fresh random-init resnet50."""
    import keras

    from contract.model_card import ImageContract
    from training.export import export_model
    from training.models.architectures import resnet50

    repo = workdir / "models"
    shutil.copytree(mnist_model, repo / "mnist_dnn")
    keras.utils.set_random_seed(0)
    export_model(
        resnet50((224, 224, 3), 1000),
        model_dir=repo,
        name="resnet50",
        image=ImageContract(color_mode="rgb", height=224, width=224, resample="bilinear"),
        labels=[f"class_{i}" for i in range(1000)],
        provenance={"architecture": "resnet50", "dataset": "random-init"},
    )
    return repo


def mnist_digit() -> np.ndarray:
    """The first MNIST test digit as mnist_dnn takes it: (1, 28, 28) float32 in [0, 1]."""
    return (np.load(MNIST_NPZ)["x_test"][:1] / 255.0).astype(np.float32)


def v2_binary_body(name: str, array: np.ndarray) -> tuple[bytes, int]:
    """A KServe v2 REST request with ``array`` as binary tensor data (and binary outputs),
    and the length of its JSON header (the ``Inference-Header-Content-Length`` value)."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "shape": list(array.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": array.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return header + array.astype(np.float32).tobytes(), len(header)


def v2_binary_scenario(workdir: Path, seconds: float) -> Scenario:
    """mnist_dnn over KServe v2 REST, the digit as binary tensor data (binary outputs too)."""
    body, header_length = v2_binary_body("image", mnist_digit())
    path = workdir / "mnist_v2_binary.bin"
    path.write_bytes(body)
    return Scenario(
        "mnist_v2_binary",
        "mnist_dnn",
        path,
        seconds,
        False,
        endpoint="/v2/models/mnist_dnn/infer",
        content_type="application/octet-stream",
        headers=(("Inference-Header-Content-Length", str(header_length)),),
    )


def write_payloads(workdir: Path) -> dict[str, Path]:
    """Request bodies: an MNIST digit as JSON, a photo-like JPEG as b64 and as floats."""
    from PIL import Image

    digits = np.load(MNIST_NPZ)["x_test"]
    mnist = {"instances": [np.round(digits[0] / 255.0, 4).tolist()]}
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (256, 320, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    jpeg = {"instances": [{"b64": base64.b64encode(buffer.getvalue()).decode()}]}
    floats = {"instances": [np.round(rng.random((224, 224, 3)), 3).tolist()]}
    paths = {}
    for name, body in (("mnist_json", mnist), ("resnet_jpeg", jpeg), ("resnet_floats", floats)):
        paths[name] = workdir / f"{name}.json"
        paths[name].write_text(json.dumps(body))
    return paths


# ----- 1. raw ceiling ---------------------------------------------------------------------
def raw_ceiling(version_dir: Path, batch_sizes: list[int], seconds: float) -> dict[int, float]:
    """Items/s of the bare signature at each batch size (in-process, no server)."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    name, spec = next(iter(signature.structured_input_signature[1].items()))
    shape = spec.shape.as_list()[1:]
    results = {}
    for size in batch_sizes:
        batch = tf.constant(np.random.default_rng(0).random((size, *shape), np.float32))
        signature(**{name: batch})  # warm
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds or count < 3:
            signature(**{name: batch})[next(iter(signature.structured_outputs))].numpy()
            count += 1
        results[size] = round(count * size / (time.perf_counter() - started), 1)
    return results


# ----- 2. and 3. served -------------------------------------------------------------------
def drive(
    url: str, scenario: Scenario, concurrencies: list[int], metrics_url: str | None
) -> list[dict[str, Any]]:
    runs = []
    for concurrency in concurrencies:
        before = metric_sum(metrics_url, "primer_batch_size", scenario.model)
        result = scenario.run(url, concurrency, scenario.seconds)
        after = metric_sum(metrics_url, "primer_batch_size", scenario.model)
        row = result.to_dict()
        if before is not None and after is not None and after[1] > before[1]:
            row["mean_batch_size"] = round((after[0] - before[0]) / (after[1] - before[1]), 2)
        runs.append(row)
        print(
            f"  {scenario.name:14s} c={concurrency:<3d} {result.requests_per_s:9.1f} req/s "
            f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
            f"errors {result.errors}  batch {row.get('mean_batch_size', '-')}",
            flush=True,
        )
    return runs


GRPC_SCENARIOS = {
    "mnist_grpc_tfserving": ("tfserving", "grpc_tfserving"),
    "mnist_grpc_v2": ("v2", "grpc_v2"),
}
"""Scenario name → (request kind, the server's ``protocol`` label)."""


def grpc_load(
    target: str,
    name: str,
    body: bytes,
    concurrency: int,
    seconds: float,
    metrics_url: str,
    client: str = "h2load",
) -> dict[str, Any]:
    """One closed-loop gRPC run of mnist_dnn (``name`` is one of ``GRPC_SCENARIOS``).

    ``client`` is ``h2load`` (C, the default: as cheap as wrk is for REST) or ``python``
    (grpc.aio worker processes). A call counts as an error when the client saw one, and
    so does every call the server did not answer OK (gRPC status lives in trailers, which
    h2load does not read): its ``primer_requests_total`` must cover the measured calls.
    """
    kind, protocol = GRPC_SCENARIOS[name]
    codes_before = request_codes(metrics_url, "mnist_dnn", protocol)
    if client == "h2load":
        result = run_h2load_grpc(
            target, METHODS[kind], body, concurrency=concurrency, seconds=seconds
        )
    else:
        result = run_grpc_load(target, kind, body, concurrency=concurrency, seconds=seconds)
    row = result.to_dict()
    row["errors"] += failed_calls(
        codes_before,
        request_codes(metrics_url, "mnist_dnn", protocol),
        result.requests,
        concurrency,
    )
    row["client"] = client
    return row


def grpc_bodies() -> dict[str, bytes]:
    """The mnist digit as a TF Serving Predict (``tensor_content``) and a v2 ModelInfer."""
    digit = mnist_digit()
    return {
        "tfserving": predict_request_bytes("mnist_dnn", "image", digit),
        "v2": infer_request_bytes("mnist_dnn", "image", digit),
    }


def drive_grpc(
    target: str, concurrencies: list[int], seconds: float, metrics_url: str, client: str = "h2load"
) -> dict[str, list[dict[str, Any]]]:
    """mnist_dnn over TF Serving gRPC Predict (tensor_content) and v2 ModelInfer."""
    bodies = grpc_bodies()
    runs: dict[str, list[dict[str, Any]]] = {}
    for name, (kind, _) in GRPC_SCENARIOS.items():
        runs[name] = []
        for concurrency in concurrencies:
            before = metric_sum(metrics_url, "primer_batch_size", "mnist_dnn")
            row = grpc_load(target, name, bodies[kind], concurrency, seconds, metrics_url, client)
            after = metric_sum(metrics_url, "primer_batch_size", "mnist_dnn")
            if before and after and after[1] > before[1]:
                row["mean_batch_size"] = round((after[0] - before[0]) / (after[1] - before[1]), 2)
            runs[name].append(row)
            print(
                f"  {name:14s} c={concurrency:<3d} {row['requests_per_s']:9.1f} req/s "
                f"p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  "
                f"errors {row['errors']}  batch {row.get('mean_batch_size', '-')}",
                flush=True,
            )
    return runs


FLOOR_SCENARIOS = {
    "mnist_json": "rest",
    "mnist_v2_binary": "rest",
    "mnist_grpc_tfserving": "grpc",
    "mnist_grpc_v2": "grpc",
}
"""Served scenario → the protocol floor it is compared with."""


def drive_floor(concurrency: int, seconds: float, rest_body: Path) -> dict[str, dict[str, Any]]:
    """The REST and gRPC floors under the served runs' load generators and mnist payloads."""
    rest_port, grpc_port = free_port(), free_port()
    command = [
        str(ROOT / ".venv" / "bin" / "python"),
        "-m",
        "loadtest.floor_server",
        "--rest-port",
        str(rest_port),
        "--grpc-port",
        str(grpc_port),
    ]
    with running(command, rest_port, health_path="/", timeout=60):
        results = {
            "rest": run_wrk(
                f"http://127.0.0.1:{rest_port}/v1/models/mnist_dnn:predict",
                rest_body,
                concurrency=concurrency,
                seconds=seconds,
            ),
            "grpc": run_h2load_grpc(
                f"127.0.0.1:{grpc_port}",
                METHODS["tfserving"],
                predict_request_bytes("mnist_dnn", "image", mnist_digit()),
                concurrency=concurrency,
                seconds=seconds,
            ),
        }
    for protocol, result in results.items():
        print(
            f"  {protocol + ' floor':14s} c={concurrency:<3d} {result.requests_per_s:9.1f} "
            f"req/s p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
            f"errors {result.errors}",
            flush=True,
        )
    return {protocol: result.to_dict() for protocol, result in results.items()}


# ----- 5. head to head --------------------------------------------------------------------
HEAD_TO_HEAD_BASELINE = "mnist_json"


def head_to_head(
    loads: dict[str, Callable[[], dict[str, Any]]], rounds: int
) -> dict[str, list[dict[str, Any]]]:
    """Run every load once per round, starting each round one load further along (so no
    load always follows the same one); returns each load's rows in round order."""
    names = list(loads)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_index in range(rounds):
        start = round_index % len(names)
        for name in names[start:] + names[:start]:
            rows[name].append(loads[name]())
    return rows


def compare_rounds(
    rows: dict[str, list[dict[str, Any]]], baseline: str = HEAD_TO_HEAD_BASELINE
) -> dict[str, dict[str, Any]]:
    """Per load: req/s of each round, their median, and its ratio to ``baseline`` in each
    round (both measured within seconds of each other) with the median of those ratios."""
    base = [row["requests_per_s"] for row in rows[baseline]]
    comparison = {}
    for name, runs in rows.items():
        rates = [row["requests_per_s"] for row in runs]
        ratios = [round(rate / b, 3) if b else 0.0 for rate, b in zip(rates, base, strict=True)]
        comparison[name] = {
            "requests_per_s": rates,
            "median_requests_per_s": round(statistics.median(rates), 1),
            f"ratio_to_{baseline}": ratios,
            "median_ratio": round(statistics.median(ratios), 3),
            "errors": sum(row["errors"] for row in runs),
        }
    return comparison


def drive_head_to_head(
    port: int,
    grpc_port: int,
    rest: list[Scenario],
    concurrency: int,
    rounds: int,
    seconds: float,
    metrics_url: str,
    client: str,
) -> dict[str, Any]:
    """The mnist_dnn REST scenarios and both gRPC APIs in interleaved rounds."""
    loads: dict[str, Callable[[], dict[str, Any]]] = {
        s.name: lambda s=s: s.run(s.url(port), concurrency, seconds).to_dict() for s in rest
    }
    bodies = grpc_bodies()
    for name, (kind, _) in GRPC_SCENARIOS.items():
        loads[name] = lambda name=name, kind=kind: grpc_load(
            f"127.0.0.1:{grpc_port}", name, bodies[kind], concurrency, seconds, metrics_url, client
        )
    comparison = compare_rounds(head_to_head(loads, rounds))
    for name, entry in comparison.items():
        print(
            f"  {name:20s} median {entry['median_requests_per_s']:9.1f} req/s  ratio to "
            f"{HEAD_TO_HEAD_BASELINE} {entry['median_ratio']:.3f} "
            f"(rounds {entry[f'ratio_to_{HEAD_TO_HEAD_BASELINE}']})  "
            f"errors {entry['errors']}",
            flush=True,
        )
    return {
        "concurrency": concurrency,
        "rounds": rounds,
        "seconds": seconds,
        "protocols": comparison,
    }


def serve_command(repo: Path, port: int, grpc_port: int, config: Path) -> list[str]:
    return [
        str(ROOT / ".venv" / "bin" / "primer-serve"),
        "--model-base-path",
        str(repo),
        "--rest-port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        "--host",
        "127.0.0.1",
        "--config",
        str(config),
        "--poll-interval-s",
        "0",
        "--log-level",
        "WARNING",
    ]


def naive_command(version_dir: Path, port: int) -> tuple[list[str], dict[str, str]]:
    command = [
        str(ROOT / ".venv" / "bin" / "uvicorn"),
        "loadtest.naive_server:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return command, {"MODEL_DIR": str(version_dir)}


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
        best_resnet_batch = max(raw["resnet50"], key=raw["resnet50"].get)
        config = workdir / "server.yaml"
        config.write_text(SERVER_CONFIG % {"resnet_batch": best_resnet_batch})

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
                report["head_to_head"] = drive_head_to_head(
                    port,
                    grpc_port,
                    [s for s in scenarios if s.model == "mnist_dnn"],
                    max(concurrencies),
                    args.head_to_head_rounds,
                    args.head_to_head_seconds,
                    metrics_url,
                    args.grpc_client,
                )
        for s in (s for s in scenarios if s.naive):
            print(f"naive FastAPI baseline ({s.model}) ...", flush=True)
            naive_port = free_port()
            command, env = naive_command(version_dirs[s.model], naive_port)
            with running(command, naive_port, env=env, health_path="/docs"):
                report["naive"][s.name] = drive(s.url(naive_port), s, concurrencies, None)
        print("protocol floor (the same stacks answering without work) ...", flush=True)
        report["floor"] = drive_floor(max(concurrencies), args.seconds, bodies["mnist_json"])

    report["summary"] = summarize(report)
    print("\nsummary (efficiency = served items/s / raw best-batch items/s):")
    for key, entry in report["summary"].items():
        print(f"  {key:22s} {json.dumps(entry)}")
    for name, entry in report["head_to_head"].get("protocols", {}).items():
        print(
            f"  head to head {name:22s} median {entry['median_requests_per_s']} req/s, "
            f"median ratio to {HEAD_TO_HEAD_BASELINE} {entry['median_ratio']}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"\nreport written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
