"""Fixtures for the training tests: real MNIST and tiny generated image datasets."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract.model_card import ImageContract
from tests.training.helpers import IMAGE_KINDS, encode_image

REPO_ROOT = Path(__file__).resolve().parents[2]
MNIST_NPZ = Path(
    os.environ.get("PRIMER_MNIST_NPZ", REPO_ROOT.parent / "shared" / "data" / "mnist.npz")
)


@pytest.fixture(scope="session")
def mnist_npz() -> Path:
    """The real MNIST archive (``../shared/data/mnist.npz`` beside the repository)."""
    if not MNIST_NPZ.is_file():
        pytest.fail(f"real MNIST not found at {MNIST_NPZ}; set PRIMER_MNIST_NPZ")
    return MNIST_NPZ


def _suffix(fmt: str) -> str:
    return ".png" if fmt == "PNG" else ".jpg"


@pytest.fixture
def image_tree(tmp_path: Path) -> Callable[..., dict[str, list[Path]]]:
    """Writes ``root/<class>/<one image per kind>``; returns class → files."""

    def make(
        root: Path | None = None,
        classes: tuple[str, ...] = ("cat", "dog", "bird"),
    ) -> dict[str, list[Path]]:
        root = root or tmp_path / "images"
        files: dict[str, list[Path]] = {}
        for c, name in enumerate(classes):
            folder = root / name
            folder.mkdir(parents=True, exist_ok=True)
            for k, (mode, fmt) in enumerate(IMAGE_KINDS):
                path = folder / f"{mode.lower()}_{k}{_suffix(fmt)}"
                path.write_bytes(encode_image(mode, fmt, seed=100 * c + k))
                files.setdefault(name, []).append(path)
        return files

    return make


@dataclass
class TrainedMnist:
    """The MNIST DNN trained for three epochs on real MNIST, shared by the session."""

    model: Any
    result: Any
    contract: ImageContract
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    checkpoint_dir: Path


@pytest.fixture(scope="session")
def trained_mnist(mnist_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedMnist:
    """Train once (3 epochs, about 15 s on two cores) for the training and export tests."""
    from training.data.datasets import load_dataset
    from training.data.inputs import image_contract, model_input
    from training.fit import TrainConfig, split_validation, train
    from training.models.registry import get_architecture

    contract = image_contract("grayscale", 28, 28)
    dataset = load_dataset(str(mnist_npz), contract)
    x_fit, y_fit, x_val, y_val = split_validation(dataset.x_train, dataset.y_train, 0.1, 0)
    model = get_architecture("mnist_dnn").build()
    checkpoint_dir = tmp_path_factory.mktemp("checkpoints")
    config = TrainConfig(epochs=3, batch_size=128, verbose=0, checkpoint_dir=checkpoint_dir)
    x_test = model_input(dataset.x_test, contract, (28, 28))
    result = train(
        model,
        (model_input(x_fit, contract, (28, 28)), y_fit),
        (model_input(x_val, contract, (28, 28)), y_val),
        (x_test, dataset.y_test),
        config,
    )
    return TrainedMnist(
        model, result, contract, x_test, dataset.y_test, dataset.class_names, checkpoint_dir
    )
