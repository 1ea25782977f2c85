"""From uint8 pixels to model inputs: the image contract and the service's normalization.

The contract's ``standardize`` statistics are computed here, on the training pixels the
model is fitted on, and recorded in ``model.json`` so the service normalizes identically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from contract.model_card import NORMALIZATIONS, ImageContract
from contract.preprocessing import normalize, to_input_layout

__all__ = ["NORMALIZATIONS", "channel_statistics", "image_contract", "model_input"]


def image_contract(
    color_mode: str,
    height: int,
    width: int,
    *,
    resample: str = "lanczos",
    normalization: str = "unit",
    train_pixels: np.ndarray | None = None,
) -> ImageContract:
    """Build the image contract; ``standardize`` takes per-channel mean/std of ``train_pixels``.

    Args:
        color_mode: ``grayscale`` or ``rgb``.
        height: image height in pixels.
        width: image width in pixels.
        resample: Pillow resize filter name.
        normalization: ``unit`` (x / 255), ``symmetric`` ([-1, 1]) or ``standardize``.
        train_pixels: uint8 (N, H, W, C) training pixels; required for ``standardize``.

    Raises:
        ValueError: ``standardize`` without training pixels, or a bad contract field.
    """
    mean = std = None
    if normalization == "standardize":
        if train_pixels is None or len(train_pixels) == 0:
            raise ValueError("normalization 'standardize' needs the training pixels")
        mean, std = channel_statistics(train_pixels)
    return ImageContract(
        color_mode=color_mode,
        height=height,
        width=width,  # type: ignore[arg-type]
        resample=resample,
        normalization=normalization,  # type: ignore[arg-type]
        mean=mean,
        std=std,
    )


def channel_statistics(
    pixels: np.ndarray, chunk: int = 256
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) standard deviation of uint8 pixels (N, H, W, C).

    Sums and sums of squares are accumulated as exact integers a chunk of images at a time
    (memory stays flat however large the training split is), and the variance is computed
    from them exactly before the one rounding to float. A constant channel has
    standard deviation 0; it gets 1.0, which leaves it merely centred.
    """
    flat = pixels.reshape(len(pixels), -1, pixels.shape[-1])
    total = np.zeros(flat.shape[-1], np.int64)
    squares = np.zeros(flat.shape[-1], np.int64)
    for start in range(0, len(flat), chunk):
        part = flat[start : start + chunk].astype(np.int64)
        total += part.sum(axis=(0, 1))
        squares += (part * part).sum(axis=(0, 1))
    count = flat.shape[0] * flat.shape[1]
    sums = [(int(t), int(q)) for t, q in zip(total, squares, strict=True)]
    mean = tuple(t / count for t, _ in sums)  # Python ints: exact until the one division
    std = tuple(math.sqrt((count * q - t * t) / (count * count)) for t, q in sums)
    return mean, tuple(s if s > 0 else 1.0 for s in std)


def model_input(
    pixels: np.ndarray, contract: ImageContract, input_shape: Sequence[int]
) -> np.ndarray:
    """uint8 pixels (N, H, W, C) → float32 model input, through the service's functions.

    Args:
        pixels: images from a :mod:`training.data.datasets` loader.
        contract: the image contract (normalization and its statistics).
        input_shape: the model's input shape without the batch axis.
    """
    return to_input_layout(normalize(pixels, contract), (-1, *input_shape))
