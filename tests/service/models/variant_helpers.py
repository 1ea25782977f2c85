"""The shipped mnist_dnn, copied and optimized into every variant, for the variant tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from contract.model_card import read_model_card
from contract.preprocessing import normalize, to_input_layout
from tests.conftest import MNIST_NPZ, SHIPPED_MODELS
from training.optimize import TARGETS, Sample, optimize

GATE_SAMPLE = 1000
CALIBRATION = 100


def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 MNIST test images as mnist_dnn's inputs, and their labels."""
    with np.load(MNIST_NPZ) as data:
        x, y = data["x_test"], data["y_test"]
    card = read_model_card(SHIPPED_MODELS / "mnist_dnn" / "1")
    assert card is not None and card.image is not None
    inputs = to_input_layout(normalize(x[..., np.newaxis], card.image), card.inputs[0].shape)
    return inputs.astype(np.float32), y.astype(np.int64)


def optimized_mnist(target_dir: Path) -> Path:
    """A copy of mnist_dnn version 1 with every variant written (the committed one untouched)."""
    version = target_dir / "mnist_dnn" / "1"
    shutil.copytree(SHIPPED_MODELS / "mnist_dnn" / "1", version)
    with np.load(MNIST_NPZ) as data:
        x_train = data["x_train"][:CALIBRATION]
        x_val, y_val = data["x_train"][-GATE_SAMPLE:], data["y_train"][-GATE_SAMPLE:]
    card = read_model_card(version)
    assert card is not None and card.image is not None
    shape = card.inputs[0].shape

    def prepared(pixels: np.ndarray) -> np.ndarray:
        rows = normalize(pixels[..., np.newaxis], card.image)
        return to_input_layout(rows, shape).astype(np.float32)

    sample = Sample(prepared(x_train), prepared(x_val), y_val.astype(np.int64))
    outcomes = optimize(version, list(TARGETS), sample)
    failed = [f"{o.target}: {o.reason}" for o in outcomes if not o.passed]
    assert not failed, failed
    return version
