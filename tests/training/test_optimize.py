"""``primer-train optimize`` on a copy of the shipped mnist_dnn: files, gate and records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from contract.model_card import read_model_card
from tests.conftest import MNIST_NPZ, SHIPPED_MODELS
from tests.service.models.variant_helpers import optimized_mnist
from training.cli import main
from training.optimize import optimize, sample_from


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return optimized_mnist(tmp_path_factory.mktemp("optimize"))


def test_every_variant_is_written_and_recorded_with_its_fidelity(version: Path) -> None:
    card = read_model_card(version)
    assert card is not None
    assert set(card.variants) == {"tflite", "tflite-fp16", "tflite-int8", "onnxruntime"}
    for record in card.variants.values():
        file = version / record["file"]
        assert file.stat().st_size == record["bytes"]
        fidelity = record["fidelity"]
        assert fidelity["sample"] == 1000
        assert fidelity["top1_agreement"] >= 0.99
        assert fidelity["reference_accuracy"] - fidelity["accuracy"] <= 0.005
    assert card.variants["tflite-int8"]["calibration_images"] == 100
    assert card.variants["onnxruntime"]["opset"] == 17
    written = json.loads((version / "assets.extra" / "model.json").read_text())
    assert written["variants"] == card.variants


def test_the_full_int8_file_is_at_most_30_percent_of_the_variables(version: Path) -> None:
    variables = sum(f.stat().st_size for f in (version / "variables").iterdir())
    assert (version / "model-int8.tflite").stat().st_size <= 0.30 * variables


@pytest.mark.parametrize(
    ("gate", "reason"),
    [
        ({"min_agreement": 1.01}, "top-1 agreement"),
        ({"max_accuracy_drop": -0.01}, "accuracy drop"),
    ],
)
def test_a_variant_failing_the_gate_is_not_written(
    tmp_path: Path, gate: dict[str, float], reason: str
) -> None:
    copy = tmp_path / "1"
    shutil.copytree(SHIPPED_MODELS / "mnist_dnn" / "1", copy)
    card = read_model_card(copy)
    assert card is not None
    sample = sample_from(str(MNIST_NPZ), card, size=200, calibration=20)
    (outcome,) = optimize(copy, ["tflite-fp16"], sample, **gate)
    assert not outcome.passed
    assert reason in outcome.reason
    assert not (copy / "model-fp16.tflite").exists()
    after = read_model_card(copy)
    assert after is not None and after.variants == {}


def test_the_cli_writes_the_requested_variants(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "1"
    shutil.copytree(SHIPPED_MODELS / "mnist_dnn" / "1", copy)
    argv = ["optimize", str(copy), "--to", "tflite", "--data", str(MNIST_NPZ), "--sample", "300"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tflite: model.tflite" in out and "written" in out
    assert (copy / "model.tflite").is_file()
    assert not (copy / "model.onnx").exists()


def test_the_cli_refuses_an_unknown_variant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "1"
    shutil.copytree(SHIPPED_MODELS / "mnist_dnn" / "1", copy)
    argv = ["optimize", str(copy), "--to", "coreml", "--data", str(MNIST_NPZ), "--sample", "50"]
    assert main(argv) == 2
    assert "unknown variant 'coreml'" in capsys.readouterr().err


def test_export_writes_variants_with_optimize(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "mnist_dnn", "--data", str(MNIST_NPZ), "--epochs", "1", "--max-steps", "20",
        "--verbose", "0", "--model-dir", str(tmp_path), "--optimize", "tflite,onnx",
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    version = tmp_path / "mnist_dnn" / "1"
    assert (version / "model.tflite").is_file() and (version / "model.onnx").is_file()
    card = read_model_card(version)
    assert card is not None and set(card.variants) == {"tflite", "onnxruntime"}
