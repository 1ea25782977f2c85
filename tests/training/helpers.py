"""Generated images for the loader tests."""

from __future__ import annotations

import io
from pathlib import Path

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


def class_pattern(index: int, size: tuple[int, int], seed: int, channels: int = 3) -> np.ndarray:
    """A uint8 (H, W, C) image whose layout tells its class: a bright band at a class offset.

    Noise keeps the images distinct; the band keeps a tiny model able to learn something.
    """
    height, width = size
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (height, width, channels), dtype=np.uint8)
    band = slice((index * height) // 5 % height, (index * height) // 5 % height + height // 5)
    image[band] = np.uint8(200 + 10 * (index % 5))
    return image


def write_class_folders(
    root: Path,
    classes: tuple[str, ...],
    per_class: int,
    size: tuple[int, int] = (40, 40),
    mode: str = "RGB",
) -> dict[str, list[Path]]:
    """``root/<class>/<n>.png|.jpg`` with :func:`class_pattern` images (alternately PNG/JPEG)."""
    files: dict[str, list[Path]] = {}
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            pixels = class_pattern(c, size, seed=1000 * c + k)
            image = Image.fromarray(pixels, "RGB").convert(mode)
            fmt = "PNG" if k % 2 == 0 else "JPEG"
            path = folder / f"{k}.{'png' if fmt == 'PNG' else 'jpg'}"
            image.save(path, format=fmt)
            files.setdefault(name, []).append(path)
    return files


def write_sign_mnist_csv(path: Path, labels: list[int], seed: int = 0) -> np.ndarray:
    """A Sign Language MNIST CSV (header, ``label,pixel1..pixel784``); returns the images."""
    images = np.stack(
        [
            class_pattern(label, (28, 28), seed + i, channels=1)[..., 0]
            for i, label in enumerate(labels)
        ]
    )
    rows = images.reshape(len(labels), -1)
    lines = ["label," + ",".join(f"pixel{i}" for i in range(1, 785))]
    lines += [
        f"{label}," + ",".join(map(str, row)) for label, row in zip(labels, rows, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return images


def png_bytes(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    """Encode uint8 pixels (H, W) or (H, W, C) as PNG or JPEG."""
    array = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()
