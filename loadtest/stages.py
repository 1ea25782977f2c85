"""The bench's stages: the raw ceiling, served runs over REST and gRPC, the protocol floor,
and the interleaved head-to-head rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.grpc_clients import METHODS, predict_request_bytes, run_grpc_load
from loadtest.h2load import run_h2load_grpc
from loadtest.processes import failed_calls, free_port, metric_sum, request_codes, running
from loadtest.scenarios import ROOT, Scenario, grpc_bodies, mnist_digit
from loadtest.wrk import LoadResult, run_wrk


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
TENSOR_CONTENT_SCENARIO = "mnist_grpc_tfserving_tensor_content"
GRPC_ENCODINGS = {
    "mnist_grpc_tfserving": "typed fields (float_val...), TF Serving's default",
    "mnist_grpc_v2": "raw_output_contents, as Triton answers",
    TENSOR_CONTENT_SCENARIO: (
        "tensor_content, a second server with enable_serialization_as_tensor_content"
    ),
}
"""How each gRPC scenario's responses carry their tensors."""


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


def floor_command(rest_port: int, grpc_port: int) -> list[str]:
    """The command of a floor server (``loadtest.floor_server``) on these ports."""
    return [
        str(ROOT / ".venv" / "bin" / "python"),
        "-m",
        "loadtest.floor_server",
        "--rest-port",
        str(rest_port),
        "--grpc-port",
        str(grpc_port),
    ]


def floor_loads(
    rest_port: int, grpc_port: int, concurrency: int, seconds: float, rest_body: Path
) -> dict[str, Callable[[], LoadResult]]:
    """Protocol (``rest``, ``grpc``) → one run of the served runs' load generator and mnist
    payload against a running floor server."""
    predict = predict_request_bytes("mnist_dnn", "image", mnist_digit())
    return {
        "rest": lambda: run_wrk(
            f"http://127.0.0.1:{rest_port}/v1/models/mnist_dnn:predict",
            rest_body,
            concurrency=concurrency,
            seconds=seconds,
        ),
        "grpc": lambda: run_h2load_grpc(
            f"127.0.0.1:{grpc_port}",
            METHODS["tfserving"],
            predict,
            concurrency=concurrency,
            seconds=seconds,
        ),
    }


def drive_floor(concurrency: int, seconds: float, rest_body: Path) -> dict[str, dict[str, Any]]:
    """The REST and gRPC floors under the served runs' load generators and mnist payloads."""
    rest_port, grpc_port = free_port(), free_port()
    with running(floor_command(rest_port, grpc_port), rest_port, health_path="/", timeout=60):
        loads = floor_loads(rest_port, grpc_port, concurrency, seconds, rest_body)
        results = {protocol: load() for protocol, load in loads.items()}
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
FLOOR_PREFIX = "floor_"
"""A floor's load in the rounds: ``floor_rest``, ``floor_grpc``."""


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


def floor_fractions(rows: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per served scenario whose floor ran in the same rounds: its req/s ÷ the floor's in each
    round, and the median of those fractions."""
    fractions = {}
    for name, protocol in FLOOR_SCENARIOS.items():
        floor = rows.get(FLOOR_PREFIX + protocol)
        if name not in rows or not floor:
            continue
        per_round = [
            round(row["requests_per_s"] / base["requests_per_s"], 3)
            if base["requests_per_s"]
            else 0.0
            for row, base in zip(rows[name], floor, strict=True)
        ]
        fractions[name] = {
            "floor": protocol,
            "floor_requests_per_s": [row["requests_per_s"] for row in floor],
            "fractions": per_round,
            "median_fraction": statistics.median(per_round),
        }
    return fractions


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
    tensor_content: tuple[int, str] | None = None,
    floor: dict[str, Callable[[], LoadResult]] | None = None,
) -> dict[str, Any]:
    """The mnist_dnn REST scenarios and both gRPC APIs in interleaved rounds; with
    ``tensor_content`` (gRPC port, metrics URL of a server answering in ``tensor_content``),
    TF Serving Predict in that encoding too; with ``floor`` (``floor_loads``), each
    protocol's floor joins the rounds, and every scenario gets its fraction of the floor of
    its own round (``floor_fractions``)."""
    loads: dict[str, Callable[[], dict[str, Any]]] = {
        s.name: lambda s=s: s.run(s.url(port), concurrency, seconds).to_dict() for s in rest
    }
    bodies = grpc_bodies()
    for name, (kind, _) in GRPC_SCENARIOS.items():
        loads[name] = lambda name=name, kind=kind: grpc_load(
            f"127.0.0.1:{grpc_port}", name, bodies[kind], concurrency, seconds, metrics_url, client
        )
    if tensor_content is not None:
        other_port, other_metrics = tensor_content
        loads[TENSOR_CONTENT_SCENARIO] = lambda: grpc_load(
            f"127.0.0.1:{other_port}",
            "mnist_grpc_tfserving",
            bodies["tfserving"],
            concurrency,
            seconds,
            other_metrics,
            client,
        )
    for protocol, load in (floor or {}).items():
        loads[FLOOR_PREFIX + protocol] = lambda load=load: load().to_dict()
    rows = head_to_head(loads, rounds)
    fractions = floor_fractions(rows)
    comparison = compare_rounds({k: v for k, v in rows.items() if not k.startswith(FLOOR_PREFIX)})
    for name, entry in comparison.items():
        print(
            f"  {name:20s} median {entry['median_requests_per_s']:9.1f} req/s  ratio to "
            f"{HEAD_TO_HEAD_BASELINE} {entry['median_ratio']:.3f} "
            f"(rounds {entry[f'ratio_to_{HEAD_TO_HEAD_BASELINE}']})  "
            f"errors {entry['errors']}",
            flush=True,
        )
    for name, entry in fractions.items():
        print(
            f"  {name:20s} fraction of its floor {entry['median_fraction']:.3f} "
            f"(rounds {entry['fractions']})",
            flush=True,
        )
    return {
        "concurrency": concurrency,
        "rounds": rounds,
        "seconds": seconds,
        "protocols": comparison,
        "floor_fractions": fractions,
    }
