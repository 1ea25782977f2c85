"""``primer-train optimize``: write a version's deployment variants behind a fidelity gate.

Each variant (``model.tflite``, ``model-fp16.tflite``, ``model-int8.tflite``,
``model.onnx``) is converted from the version's SavedModel (TFLite converter, tf2onnx),
then compared with the SavedModel on a held-out labelled sample: top-1 agreement, max abs
difference and accuracy. A variant passing the gate (default: agreement ≥ 99% and accuracy
drop ≤ 0.5 points) is written into the version folder and recorded under ``variants`` in
``assets.extra/model.json``; one failing it is not written and the reason is printed.
Full-integer int8 calibrates on training images (a representative dataset).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from contract.layout import SIGNATURE, VARIANT_FILES
from contract.model_card import ModelCard, read_model_card, write_model_card
from contract.preprocessing import normalize, to_input_layout
from training.data.datasets import load_dataset

TARGETS: dict[str, str] = {
    "tflite": "tflite",
    "tflite-fp16": "tflite-fp16",
    "tflite-int8": "tflite-int8",
    "onnx": "onnxruntime",
}
"""``--to`` names and the runtime each variant is served by."""
MIN_AGREEMENT = 0.99
MAX_ACCURACY_DROP = 0.005


@dataclass(frozen=True)
class Sample:
    """Model inputs for calibration, and a labelled held-out set for the gate."""

    calibration: np.ndarray
    inputs: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class Outcome:
    """One variant's fidelity and whether it passed the gate."""

    target: str
    runtime: str
    passed: bool
    record: dict[str, Any]
    reason: str = ""


def sample_from(data: str, card: ModelCard, size: int, calibration: int) -> Sample:
    """Held-out test images and training images for calibration, as model inputs."""
    if card.image is None:
        raise ValueError("the model card has no image contract; cannot prepare a sample")
    dataset = load_dataset(data, card.image)
    shape = card.inputs[0].shape

    def prepared(pixels: np.ndarray) -> np.ndarray:
        return to_input_layout(normalize(pixels, card.image), shape).astype(np.float32)

    return Sample(
        calibration=prepared(dataset.x_train[:calibration]),
        inputs=prepared(dataset.x_test[:size]),
        labels=dataset.y_test[:size],
    )


def _tflite(path: str, target: str, calibration: np.ndarray) -> tuple[bytes, dict[str, Any]]:
    converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=[SIGNATURE])
    settings: dict[str, Any] = {"converter": f"tf.lite {tf.__version__}"}
    if target == "tflite-fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        settings["quantization"] = "float16 weights"
    elif target == "tflite-int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: ([row[np.newaxis]] for row in calibration)
        settings["quantization"] = "full integer int8, float32 input/output"
        settings["calibration_images"] = len(calibration)
    return converter.convert(), settings


def _onnx(path: str, opset: int = 17) -> tuple[bytes, dict[str, Any]]:
    import tf2onnx

    loaded = tf.saved_model.load(path)  # kept referenced: the signature needs its variables
    signature = loaded.signatures[SIGNATURE]
    _, kwargs = signature.structured_input_signature
    names = sorted(kwargs)
    specs = [tf.TensorSpec(kwargs[n].shape, kwargs[n].dtype, name=n) for n in names]

    @tf.function(input_signature=specs)
    def serve(*tensors: tf.Tensor) -> list[tf.Tensor]:
        outputs = signature(**dict(zip(names, tensors, strict=True)))
        return [outputs[k] for k in sorted(outputs)]

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=specs, opset=opset)
    del loaded
    return proto.SerializeToString(), {
        "converter": f"tf2onnx {tf2onnx.__version__}",
        "opset": opset,
    }


Predict = Callable[[np.ndarray], np.ndarray]


def _saved_model_predict(path: str, card: ModelCard) -> Predict:
    function = tf.saved_model.load(path).signatures[SIGNATURE]
    name, output = card.inputs[0].name, card.outputs[0].name
    return lambda x: function(**{name: tf.constant(x)})[output].numpy()


def _variant_predict(target: str, blob: bytes, card: ModelCard) -> Predict:
    """The converted model's predict, run on the runtime that will serve it."""
    name, output = card.inputs[0].name, card.outputs[0].name
    if target == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        index = sorted(t.name for t in card.outputs).index(output)
        feed = session.get_inputs()[0].name
        return lambda x: session.run(None, {feed: x})[index]
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=blob, num_threads=2).get_signature_runner(SIGNATURE)
    return lambda x: runner(**{name: x})[output]


def convert(path: str, target: str, calibration: np.ndarray) -> tuple[bytes, dict[str, Any]]:
    """One variant of the SavedModel at ``path``, unchecked, and its conversion settings."""
    return _onnx(path) if target == "onnx" else _tflite(path, target, calibration)


def _predict_all(predict: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray) -> np.ndarray:
    return np.concatenate([predict(inputs[i : i + 256]) for i in range(0, len(inputs), 256)])


def fidelity(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Top-1 agreement, max abs diff and both accuracies on one sample."""
    ref_top, cand_top = reference.argmax(axis=1), candidate.argmax(axis=1)
    return {
        "sample": len(labels),
        "top1_agreement": float(np.mean(ref_top == cand_top)),
        "max_abs_diff": float(np.max(np.abs(reference - candidate))),
        "accuracy": float(np.mean(cand_top == labels)),
        "reference_accuracy": float(np.mean(ref_top == labels)),
    }


def optimize(
    version_dir: str | Path,
    targets: Sequence[str],
    sample: Sample,
    *,
    min_agreement: float = MIN_AGREEMENT,
    max_accuracy_drop: float = MAX_ACCURACY_DROP,
) -> list[Outcome]:
    """Convert, gate, write and record each target variant of one version."""
    path = str(version_dir)
    card = read_model_card(path)
    if card is None:
        raise ValueError(f"{path} has no assets.extra/model.json")
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r}; expected some of {', '.join(TARGETS)}")
    reference = _predict_all(_saved_model_predict(path, card), sample.inputs)
    outcomes, variants = [], dict(card.variants)
    for target in targets:
        runtime = TARGETS[target]
        blob, settings = convert(path, target, sample.calibration)
        file_name = VARIANT_FILES[runtime]
        candidate = _predict_all(_variant_predict(target, blob, card), sample.inputs)
        measured = fidelity(reference, candidate, sample.labels)
        drop = measured["reference_accuracy"] - measured["accuracy"]
        record = {"file": file_name, "format": target, "bytes": len(blob), **settings}
        record["fidelity"] = measured
        reason = ""
        if measured["top1_agreement"] < min_agreement:
            reason = f"top-1 agreement {measured['top1_agreement']:.4f} < {min_agreement}"
        elif drop > max_accuracy_drop:
            reason = f"accuracy drop {drop * 100:.2f} points > {max_accuracy_drop * 100:.2f}"
        if not reason:
            (Path(path) / file_name).write_bytes(blob)
            variants[runtime] = record
        outcomes.append(Outcome(target, runtime, not reason, record, reason))
    write_model_card(path, dataclasses.replace(card, variants=variants))
    return outcomes


def build_parser() -> argparse.ArgumentParser:
    """``primer-train optimize``'s arguments."""
    parser = argparse.ArgumentParser(prog="primer-train optimize", description=__doc__)
    parser.add_argument("version", help="the version folder, e.g. models/mnist_dnn/1")
    parser.add_argument("--to", default=",".join(TARGETS), help="comma-separated variants")
    parser.add_argument("--data", required=True, help="dataset for the gate (mnist.npz, ...)")
    parser.add_argument("--sample", type=int, default=2000, help="held-out images for the gate")
    parser.add_argument("--calibration", type=int, default=200, help="int8 calibration images")
    parser.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT)
    parser.add_argument("--max-accuracy-drop", type=float, default=MAX_ACCURACY_DROP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``primer-train optimize``; 0 when every requested variant passed the gate."""
    args = build_parser().parse_args(argv)
    targets = [t.strip() for t in args.to.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        print(
            f"primer-train optimize: error: unknown variant {(unknown or [''])[0]!r}; "
            f"--to takes some of {', '.join(TARGETS)}",
            file=sys.stderr,
        )
        return 2
    card = read_model_card(args.version)
    if card is None:
        print(f"primer-train: error: {args.version} has no model.json", file=sys.stderr)
        return 1
    sample = sample_from(args.data, card, args.sample, args.calibration)
    outcomes = optimize(
        args.version,
        targets,
        sample,
        min_agreement=args.min_agreement,
        max_accuracy_drop=args.max_accuracy_drop,
    )
    for outcome in outcomes:
        fid = outcome.record["fidelity"]
        verdict = "written" if outcome.passed else f"NOT written: {outcome.reason}"
        print(
            f"{outcome.target}: {outcome.record['file']} {outcome.record['bytes']} bytes, "
            f"agreement {fid['top1_agreement']:.4f}, accuracy {fid['accuracy']:.4f} "
            f"(SavedModel {fid['reference_accuracy']:.4f}) — {verdict}"
        )
    return 0 if all(o.passed for o in outcomes) else 1
