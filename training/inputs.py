"""From uint8 pixels to model inputs: the image contract and the service's normalization.

The contract's ``standardize`` statistics are computed here, on the training pixels the
model is fitted on, and recorded in ``model.json`` so the service normalizes identically.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.model_card import ImageContract
from service.preprocessing import normalize, to_input_layout

NORMALIZATIONS = ("unit", "symmetric", "standardize")


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
        axes = tuple(range(train_pixels.ndim - 1))
        mean = tuple(float(m) for m in train_pixels.mean(axis=axes, dtype=np.float64))
        # A constant channel has std 0; 1.0 leaves it merely centred.
        std = tuple(
            float(s) if s > 0 else 1.0 for s in train_pixels.std(axis=axes, dtype=np.float64)
        )
    return ImageContract(
        color_mode=color_mode,
        height=height,
        width=width,  # type: ignore[arg-type]
        resample=resample,
        normalization=normalization,  # type: ignore[arg-type]
        mean=mean,
        std=std,
    )


def model_input(
    pixels: np.ndarray, contract: ImageContract, input_shape: Sequence[int]
) -> np.ndarray:
    """uint8 pixels (N, H, W, C) → float32 model input, through the service's functions.

    Args:
        pixels: images from a :mod:`training.datasets` loader.
        contract: the image contract (normalization and its statistics).
        input_shape: the model's input shape without the batch axis.
    """
    return to_input_layout(normalize(pixels, contract), (-1, *input_shape))
