"""The runtimes stage of the bench: raw items/s per runtime and batch size, and served
resnet50 JPEG at one concurrency per runtime, each as a ratio to TensorFlow's raw best-batch
ceiling measured in the same run.

ResNet50 is random-init, so its variants are written without the fidelity gate (the gate is
measured on trained models: mnist_dnn goes through ``optimize`` with its gate on MNIST).
Run alone with ``python -m loadtest.runtimes`` (bounded: ``--raw-seconds`` per batch size,
``--seconds`` per served run), or from ``make bench`` (``loadtest.bench --runtimes``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from contract.layout import VARIANT_FILES
from loadtest.processes import free_port, running
from loadtest.scenarios import (
    MNIST_NPZ,
    ROOT,
    SERVER_CONFIG,
    Scenario,
    prepare_models,
    serve_command,
    write_payloads,
)
from loadtest.stages import drive

RUNTIMES = ("tensorflow", "tflite", "tflite-fp16", "tflite-int8", "onnxruntime")
TARGET_OF = {
    "tflite": "tflite",
    "tflite-fp16": "tflite-fp16",
    "tflite-int8": "tflite-int8",
    "onnxruntime": "onnx",
}


def write_variants(version_dir: Path, calibration: np.ndarray, gate_data: str | None) -> None:
    """Every variant of one version: gated when labelled data is given, else unchecked."""
    from contract.model_card import read_model_card
    from training.optimize import convert, optimize, sample_from

    if gate_data is not None:
        card = read_model_card(version_dir)
        assert card is not None
        optimize(version_dir, list(TARGET_OF.values()), sample_from(gate_data, card, 1000, 100))
        return
    for runtime, target in TARGET_OF.items():
        blob, _ = convert(str(version_dir), target, calibration)
        (version_dir / VARIANT_FILES[runtime]).write_bytes(blob)


def prepare_variants(repo: Path) -> None:
    """mnist_dnn's variants through the gate on MNIST; resnet50's calibrated on noise."""
    write_variants(repo / "mnist_dnn" / "1", np.zeros((0,)), str(MNIST_NPZ))
    calibration = np.random.default_rng(0).random((16, 224, 224, 3), np.float32)
    write_variants(repo / "resnet50" / "1", calibration, None)


def raw_items_per_s(
    version_dir: Path, runtime: str, batch_sizes: list[int], seconds: float, threads: int
) -> dict[int, float]:
    """Items/s of one runtime's bare predict at each batch size (in-process, no server)."""
    import time

    from service.models.runtime import SavedModelRuntime
    from service.models.runtime_variants import open_variant

    model = (
        SavedModelRuntime(version_dir)
        if runtime == "tensorflow"
        else open_variant(str(version_dir), runtime, threads)
    )
    spec = next(iter(model.signatures["serving_default"].inputs.values()))
    results = {}
    for size in batch_sizes:
        batch = {spec.name: np.random.default_rng(0).random((size, *spec.shape[1:]), np.float32)}
        model.predict("serving_default", batch)  # warm
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds or count < 3:
            model.predict("serving_default", batch)
            count += 1
        results[size] = round(count * size / (time.perf_counter() - started), 1)
    model.close()
    return results


def run_runtimes(
    repo: Path,
    jpeg_body: Path,
    *,
    raw_seconds: float,
    seconds: float,
    concurrency: int,
    threads: int,
    runtimes: tuple[str, ...] = RUNTIMES,
) -> dict[str, Any]:
    """The stage itself over a repository holding mnist_dnn/1 and resnet50/1 with variants."""
    sizes = {"mnist_dnn": [1, 8, 32, 128], "resnet50": [1, 4, 8, 16]}
    raw: dict[str, dict[str, dict[int, float]]] = {}
    for model, batch_sizes in sizes.items():
        raw[model] = {}
        for runtime in runtimes:
            raw[model][runtime] = raw_items_per_s(
                repo / model / "1", runtime, batch_sizes, raw_seconds, threads
            )
            print(f"  raw {model:10s} {runtime:12s} {raw[model][runtime]}", flush=True)
    tf_ceiling = {m: max(raw[m]["tensorflow"].values()) for m in raw}
    ratios = {
        m: {r: round(max(v.values()) / tf_ceiling[m], 2) for r, v in raw[m].items()} for m in raw
    }
    best_batch = max(raw["resnet50"]["tensorflow"], key=raw["resnet50"]["tensorflow"].get)
    served: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="primer-runtimes-") as tmp:
        config = Path(tmp) / "server.yaml"
        config.write_text(SERVER_CONFIG % {"resnet_batch": best_batch})
        scenario = Scenario("resnet_jpeg", "resnet50", jpeg_body, seconds, False)
        for runtime in runtimes:
            port, grpc_port = free_port(), free_port()
            command = [*serve_command(repo, port, grpc_port, config), "--runtime", runtime]
            env = {"PRIMER_RUNTIME_THREADS": str(threads)}
            with running(command, port, env=env):
                (row,) = drive(
                    scenario.url(port), scenario, [concurrency], f"http://127.0.0.1:{port}/metrics"
                )
            row["ratio_to_tf_raw_ceiling"] = round(
                row["requests_per_s"] / tf_ceiling["resnet50"], 2
            )
            served[runtime] = row
            print(
                f"  served resnet_jpeg c={concurrency} {runtime:12s} "
                f"{row['requests_per_s']} req/s, "
                f"{row['ratio_to_tf_raw_ceiling']}x the TF raw ceiling",
                flush=True,
            )
    return {
        "raw": raw,
        "raw_best_ratio_to_tf": ratios,
        "tf_raw_ceiling": tf_ceiling,
        "served_resnet_jpeg": served,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-seconds", type=float, default=2.0, help="per runtime and batch size")
    parser.add_argument("--seconds", type=float, default=15.0, help="per served run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="TFLite / ONNX Runtime threads")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--out", default=str(ROOT / "reports" / "runtimes.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="primer-bench-") as tmp:
        workdir = Path(tmp)
        print("preparing models, variants and payloads ...", flush=True)
        repo = prepare_models(workdir, ROOT / "models" / "mnist_dnn")
        prepare_variants(repo)
        bodies = write_payloads(workdir)
        report = run_runtimes(
            repo,
            bodies["resnet_jpeg"],
            raw_seconds=args.raw_seconds,
            seconds=args.seconds,
            concurrency=args.concurrency,
            threads=args.threads,
            runtimes=tuple(args.runtimes.split(",")),
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"report written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
