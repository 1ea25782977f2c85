"""Generated images for the loader tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# (Pillow mode, file format) of every generated image kind the loaders must read.
IMAGE_KINDS = (
    ("L", "PNG"),
    ("RGB", "PNG"),
    ("RGBA", "PNG"),
    ("P", "PNG"),
    ("L", "JPEG"),
    ("RGB", "JPEG"),
)


def encode_image(mode: str, fmt: str, seed: int, size: tuple[int, int] = (12, 10)) -> bytes:
    """A random image of the given Pillow mode, encoded as ``fmt`` (PNG or JPEG)."""
    rng = np.random.default_rng(seed)
    width, height = size
    rgba = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    image = Image.fromarray(rgba, "RGBA")
    if mode == "P":
        image = image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    else:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()
