"""Training's loaders agree bit for bit with the contract's preprocessing, which serving uses.

The loaders produce uint8 pixels with the contract's decoding, and ``model_input`` applies
its ``normalize``; these tests pin that the composition is exactly what the server computes
for the same image bytes. (The preprocessing's own pinned values are in
``tests/contract/test_preprocessing.py``.)
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contract.model_card import ImageContract
from contract.preprocessing import normalize, preprocess_image, preprocess_pixels
from training.data.datasets import array_pixels, load_mnist
from training.data.inputs import image_contract, model_input

REPO_ROOT = Path(__file__).resolve().parents[3]
MNIST_CONTRACT = ImageContract("grayscale", 28, 28)


def _png(pixels: list, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.array(pixels, dtype=np.uint8), mode).save(buffer, "PNG")
    return buffer.getvalue()


def test_mnist_digit_as_png_is_bitwise_the_loader_row(mnist_npz: Path) -> None:
    with np.load(mnist_npz) as archive:
        digits = archive["x_test"][:50]
    loader_rows = model_input(array_pixels(digits, MNIST_CONTRACT), MNIST_CONTRACT, (28, 28))
    for digit, loader_row in zip(digits, loader_rows, strict=True):
        served = preprocess_image(_png(digit, "L"), MNIST_CONTRACT)
        assert served.dtype == loader_row.dtype == np.float32
        np.testing.assert_array_equal(served[..., 0], loader_row)  # bitwise, not allclose


def test_committed_loadtest_digits_match_mnist(mnist_npz: Path) -> None:
    files = sorted((REPO_ROOT / "loadtest" / "data").glob("digit_*.png"))
    assert len(files) >= 10
    dataset = load_mnist(mnist_npz, MNIST_CONTRACT)
    rows = model_input(dataset.x_test, MNIST_CONTRACT, (28, 28))
    for path in files:
        _, label, index = path.stem.split("_")
        assert dataset.y_test[int(index)] == int(label), path.name
        np.testing.assert_array_equal(
            preprocess_image(path.read_bytes(), MNIST_CONTRACT)[..., 0], rows[int(index)]
        )


@pytest.mark.parametrize(
    "contract",
    [
        ImageContract("grayscale", 28, 28),
        ImageContract("grayscale", 20, 32, resample="bilinear", normalization="symmetric"),
        ImageContract(
            "rgb",
            32,
            32,
            normalization="standardize",
            mean=(30.0, 31.0, 32.0),
            std=(70.0, 71.0, 72.0),
        ),
    ],
)
def test_array_loader_equals_preprocess_pixels(contract: ImageContract) -> None:
    rng = np.random.default_rng(0)
    batches = [
        rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        rng.integers(0, 256, (5, 28, 28, 1), dtype=np.uint8),
        rng.integers(0, 256, (5, 30, 26, 3), dtype=np.uint8),
        rng.integers(-20, 300, (5, 28, 28)).astype(np.int32),
    ]
    for batch in batches:
        rows = normalize(array_pixels(batch, contract), contract)
        for image, row in zip(batch, rows, strict=True):
            np.testing.assert_array_equal(row, preprocess_pixels(image, contract))


def test_standardize_uses_training_statistics() -> None:
    pixels = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (10, 30)])
    pixels[..., 2] = 7  # a constant channel: std 0 becomes 1
    contract = image_contract("rgb", 2, 2, normalization="standardize", train_pixels=pixels)
    assert contract.mean == (20.0, 20.0, 7.0)
    assert contract.std == (10.0, 10.0, 1.0)
    rows = model_input(pixels, contract, (2, 2, 3))
    np.testing.assert_array_equal(rows[0, 0, 0], np.array([-1, -1, 0], np.float32))
    with pytest.raises(ValueError, match="training pixels"):
        image_contract("rgb", 2, 2, normalization="standardize")
