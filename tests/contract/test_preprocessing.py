"""The contract's image preprocessing: pinned values, and its own errors for bad images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from contract.errors import ContractError, ImageError, ImageTooLargeError
from contract.model_card import ImageContract
from contract.preprocessing import decode_image, preprocess_image, to_input_layout


def _png(pixels: list, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.array(pixels, dtype=np.uint8), mode).save(buffer, "PNG")
    return buffer.getvalue()


KNOWN_GRAY = _png([[0, 51], [102, 255]], "L")


@pytest.mark.parametrize(
    ("contract", "expected"),
    [
        (
            ImageContract("grayscale", 2, 2, normalization="unit"),
            [[0.0, 0.20000000298023224], [0.4000000059604645, 1.0]],
        ),
        (
            ImageContract("grayscale", 2, 2, normalization="symmetric"),
            [[-1.0, -0.6000000238418579], [-0.19999998807907104, 1.0]],
        ),
        (
            ImageContract(
                "grayscale", 2, 2, normalization="standardize", mean=(51.0,), std=(102.0,)
            ),
            [[-0.5, 0.0], [0.5, 2.0]],
        ),
    ],
)
def test_pinned_values_for_a_known_image(contract: ImageContract, expected: list) -> None:
    row = preprocess_image(KNOWN_GRAY, contract)
    assert row.dtype == np.float32
    assert row.shape == (2, 2, 1)
    np.testing.assert_array_equal(row[..., 0], np.array(expected, dtype=np.float32))


def test_pinned_grayscale_conversion_and_resize() -> None:
    rgb = _png([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], "RGB")
    gray = preprocess_image(rgb, ImageContract("grayscale", 2, 2)) * 255
    np.testing.assert_array_equal(gray[..., 0].round(), [[76, 150], [29, 255]])
    gradient = _png(np.arange(16).reshape(4, 4) * 17, "L")
    expected = {
        "lanczos": [[46, 79], [176, 209]],
        "bilinear": [[61, 88], [167, 194]],
        "nearest": [[85, 119], [221, 255]],
    }
    for resample, values in expected.items():
        row = preprocess_image(gradient, ImageContract("grayscale", 2, 2, resample=resample))
        np.testing.assert_array_equal((row[..., 0] * 255).round(), values)


NOISE_PNG = _png(np.random.default_rng(0).integers(0, 256, (24, 24)).tolist(), "L")


@pytest.mark.parametrize(
    ("data", "error", "needle"),
    [
        (b"", ImageError, "image is empty"),
        (b"not an image at all", ImageError, "not an image in an accepted format"),
        (NOISE_PNG[:200], ImageError, "corrupt or truncated"),
        (_png(np.zeros((40, 40)).tolist(), "L"), ImageTooLargeError, "the limit is 1000 pixels"),
    ],
)
def test_bad_images_raise_the_contract_errors(data: bytes, error: type, needle: str) -> None:
    with pytest.raises(error, match=needle) as raised:
        decode_image(data, max_pixels=1000)
    assert isinstance(raised.value, ContractError)  # what the service maps to 400 / 413


def test_an_image_that_cannot_fill_the_input_is_a_contract_error() -> None:
    rows = np.zeros((1, 8, 8, 3), np.float32)
    with pytest.raises(ImageError, match="cannot feed input shape"):
        to_input_layout(rows, (-1, 8, 8))
