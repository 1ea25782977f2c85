"""The runtimes stage of the bench: raw items/s per runtime and batch size, and served
resnet50 JPEG at one concurrency per runtime, each as a ratio to TensorFlow's raw best-batch
ceiling measured in the same round.

ResNet50 is random-init, so its variants are written without the fidelity gate (the gate is
measured on trained models: mnist_dnn goes through ``optimize`` with its gate on MNIST).
The machine is shared, so the served runs are interleaved: every server starts once, then
each round measures TensorFlow's raw ceiling and drives every served setup (in alternating
order); a setup's ratio is its req/s over that round's ceiling, reported per round and as
the median. Run alone with ``python -m loadtest.runtimes`` (``--repo DIR`` keeps the prepared
models and variants for the next run), or from ``make bench`` (``loadtest.bench``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contract.layout import VARIANT_FILES
from loadtest.processes import free_port, running
from loadtest.reports import write_report
from loadtest.scenarios import (
    MNIST_NPZ,
    ROOT,
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
RAW_SIZES = {"mnist_dnn": [1, 8, 32, 128], "sign_cnn": [1, 8, 32, 128], "resnet50": [1, 4, 8, 16]}
SETUPS = (
    "tensorflow=tensorflow",
    "tflite=tflite",
    "tflite-int8=tflite-int8",
    "onnxruntime=onnxruntime",
    "tflite-int8/b1x2=tflite-int8:1:1:2",
    "tflite-int8/b4x2=tflite-int8:1:4:2",
    "tflite-int8/b8=tflite-int8:2:8:1",
)
"""The served setups: ``label=runtime[:threads[:max_batch_size[:concurrent_batches]]]``;
max_batch_size 0 (the default) is TensorFlow's best raw batch."""
SERVER_CONFIG = """
batching: {max_queue_size: 1024}
models:
  resnet50:
    batching: {max_batch_size: %(batch)d, batch_timeout_ms: 20.0, max_queue_size: 256,
               max_enqueued_batches: 256, max_concurrent_batches: %(concurrent)d}
"""
"""Queues bounded by requests only: small batches must not shed the c=32 clients."""


@dataclass(frozen=True)
class Setup:
    """One served configuration of resnet50."""

    label: str
    runtime: str
    threads: int = 2
    max_batch_size: int = 0
    concurrent_batches: int = 1

    @classmethod
    def parse(cls, text: str, threads: int) -> Setup:
        label, _, spec = text.partition("=")
        runtime, *numbers = (spec or label).split(":")
        values = [int(n) for n in numbers]
        return cls(label, runtime, *values) if values else cls(label, runtime, threads)


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
    """mnist_dnn's variants through the gate on MNIST; sign_cnn's and resnet50's (random
    init, sign_cnn exported here) calibrated on noise."""
    write_variants(repo / "mnist_dnn" / "1", np.zeros((0,)), str(MNIST_NPZ))
    if not (repo / "sign_cnn" / "1").is_dir():
        export_sign_cnn(repo)
    rng = np.random.default_rng(0)
    write_variants(repo / "sign_cnn" / "1", rng.random((16, 128, 128, 1), np.float32), None)
    write_variants(repo / "resnet50" / "1", rng.random((16, 224, 224, 3), np.float32), None)


def export_sign_cnn(repo: Path) -> None:
    """A random-init sign_cnn as ``sign_cnn/1`` (raw figures only; it is not served)."""
    import keras

    from contract.model_card import ImageContract
    from training.export import export_model
    from training.models.architectures import sign_cnn

    keras.utils.set_random_seed(0)
    export_model(
        sign_cnn((128, 128, 1), 26),
        model_dir=repo,
        name="sign_cnn",
        image=ImageContract(color_mode="grayscale", height=128, width=128, resample="bilinear"),
        labels=[chr(ord("A") + i) for i in range(26)],
        provenance={"architecture": "sign_cnn", "dataset": "random-init"},
    )


def raw_items_per_s(
    version_dir: Path, runtime: str, batch_sizes: list[int], seconds: float, threads: int
) -> dict[int, float]:
    """Items/s of one runtime's bare predict at each batch size (in-process, no server)."""
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


def raw_table(
    repo: Path, raw_seconds: float, threads: int, runtimes: tuple[str, ...]
) -> dict[str, dict[str, dict[int, float]]]:
    """Raw items/s of every runtime at every batch size, for mnist_dnn, sign_cnn, resnet50."""
    raw: dict[str, dict[str, dict[int, float]]] = {}
    for model, batch_sizes in RAW_SIZES.items():
        raw[model] = {}
        for runtime in runtimes:
            raw[model][runtime] = raw_items_per_s(
                repo / model / "1", runtime, batch_sizes, raw_seconds, threads
            )
            print(f"  raw {model:10s} {runtime:12s} {raw[model][runtime]}", flush=True)
    return raw


def serve_setups(
    stack: contextlib.ExitStack, repo: Path, workdir: Path, setups: list[Setup], tf_batch: int
) -> dict[str, int]:
    """Start one server per setup (kept for every round); the REST port of each."""
    ports = {}
    for setup in setups:
        config = workdir / f"server-{len(ports)}.yaml"
        batch = setup.max_batch_size or tf_batch
        config.write_text(SERVER_CONFIG % {"batch": batch, "concurrent": setup.concurrent_batches})
        port, grpc_port = free_port(), free_port()
        command = [*serve_command(repo, port, grpc_port, config), "--runtime", setup.runtime]
        env = {"PRIMER_RUNTIME_THREADS": str(setup.threads)}
        stack.enter_context(running(command, port, env=env))
        ports[setup.label] = port
    return ports


def run_runtimes(
    repo: Path,
    jpeg_body: Path,
    *,
    raw_seconds: float,
    seconds: float,
    concurrency: int,
    threads: int,
    rounds: int = 3,
    runtimes: tuple[str, ...] = RUNTIMES,
    setups: tuple[str, ...] = SETUPS,
) -> dict[str, Any]:
    """The stage itself over a repository holding mnist_dnn/1, sign_cnn/1 and resnet50/1 with
    their variants."""
    raw = raw_table(repo, raw_seconds, threads, runtimes)
    tf_ceiling = {m: max(raw[m]["tensorflow"].values()) for m in raw}
    ratios = {
        m: {r: round(max(v.values()) / tf_ceiling[m], 2) for r, v in raw[m].items()} for m in raw
    }
    tf_batch = max(raw["resnet50"]["tensorflow"], key=raw["resnet50"]["tensorflow"].get)
    parsed = [Setup.parse(s, threads) for s in setups]
    scenario = Scenario("resnet_jpeg", "resnet50", jpeg_body, seconds, False)
    per_round: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="primer-runtimes-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        ports = serve_setups(stack, repo, Path(tmp), parsed, tf_batch)
        for index in range(rounds):
            sizes = RAW_SIZES["resnet50"]
            tf_raw = raw_items_per_s(repo / "resnet50" / "1", "tensorflow", sizes, raw_seconds, 1)
            ceiling = max(tf_raw.values())
            row: dict[str, Any] = {"tf_raw": tf_raw, "tf_raw_ceiling": ceiling, "served": {}}
            print(f"  round {index + 1}: TF raw {tf_raw} (ceiling {ceiling})", flush=True)
            order = parsed if index % 2 == 0 else parsed[::-1]
            for setup in order:
                port = ports[setup.label]
                url = f"http://127.0.0.1:{port}/metrics"
                (served,) = drive(scenario.url(port), scenario, [concurrency], url)
                ok_per_s = answered_per_s(served)
                served["ratio_to_tf_raw_ceiling"] = round(ok_per_s / ceiling, 2)
                row["served"][setup.label] = served
                print(
                    f"    {setup.label:18s} {ok_per_s:6.1f} answered/s = "
                    f"{served['ratio_to_tf_raw_ceiling']}x the round's TF raw ceiling",
                    flush=True,
                )
            per_round.append(row)
    summary = {s.label: summarize(per_round, s.label) for s in parsed}
    for label, figures in summary.items():
        print(f"  served {label:18s} {figures}")
    return {
        "raw": raw,
        "raw_best_ratio_to_tf": ratios,
        "tf_raw_ceiling": tf_ceiling,
        "setups": [asdict(s) for s in parsed],
        "tf_best_batch": tf_batch,
        "served_resnet_jpeg_rounds": per_round,
        "served_ratio_to_tf_raw_ceiling": summary,
    }


def answered_per_s(row: dict[str, Any]) -> float:
    """Answered (2xx) requests per second of one served run."""
    return (row["requests"] - row["errors"]) / row["seconds"]


def summarize(per_round: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """A setup's ratio to each round's TF raw ceiling (and to served TensorFlow when it ran
    in the same rounds), per round and the median."""
    ceiling = [r["served"][label]["ratio_to_tf_raw_ceiling"] for r in per_round]
    figures: dict[str, Any] = {"per_round": ceiling, "median": round(statistics.median(ceiling), 2)}
    if all("tensorflow" in r["served"] for r in per_round):
        served_tf = [
            round(answered_per_s(r["served"][label]) / answered_per_s(r["served"]["tensorflow"]), 2)
            for r in per_round
        ]
        figures["to_served_tf_per_round"] = served_tf
        figures["to_served_tf_median"] = round(statistics.median(served_tf), 2)
    return figures


def prepared_repository(workdir: Path) -> Path:
    """The models and variants under ``workdir``, prepared unless an earlier run left them."""
    repo = workdir / "models"
    if not (repo / "resnet50" / "1").is_dir():
        repo = prepare_models(workdir, ROOT / "models" / "mnist_dnn")
    if not (repo / "sign_cnn" / "1" / VARIANT_FILES["tflite-int8"]).is_file():
        prepare_variants(repo)
    return repo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-seconds", type=float, default=2.0, help="per runtime and batch size")
    parser.add_argument("--seconds", type=float, default=15.0, help="per served run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved served rounds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="TFLite / ONNX Runtime threads")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help="raw runtimes")
    parser.add_argument("--setups", default=",".join(SETUPS), help="served setups (see SETUPS)")
    parser.add_argument("--repo", help="folder keeping the prepared models between runs")
    parser.add_argument("--out", default=str(ROOT / "reports" / "runtimes.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="primer-bench-") as tmp:
        workdir = Path(args.repo) if args.repo else Path(tmp)
        print("preparing models, variants and payloads ...", flush=True)
        repo = prepared_repository(workdir)
        bodies = write_payloads(Path(tmp))
        report = run_runtimes(
            repo,
            bodies["resnet_jpeg"],
            raw_seconds=args.raw_seconds,
            seconds=args.seconds,
            concurrency=args.concurrency,
            threads=args.threads,
            rounds=args.rounds,
            runtimes=tuple(args.runtimes.split(",")),
            setups=tuple(args.setups.split(",")),
        )
    out = write_report(args.out, report)
    print(f"report written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
