"""Sign Language MNIST: a CSV of ``label,pixel1..pixel784`` rows (28x28 grayscale hand signs).

Labels 0-25 are the letters A-Z, so a label is its letter's position in the alphabet. The
dataset has 24 letters: J (9) and Z (25) are signed with a motion and have no images. The
class list is always A-Z; :mod:`training.data.classes` decides whether the two absent letters stay
as never-predicted classes (the default) or leave the head.
"""

from __future__ import annotations

import csv
import string
from pathlib import Path

import numpy as np

from contract.model_card import ImageContract
from training.data.layouts import DatasetError, array_pixels
from training.data.sampling import subset_indices

SIGN_MNIST_CLASSES = tuple(string.ascii_uppercase)
SIGN_MNIST_SIDE = 28
_WIDTH = SIGN_MNIST_SIDE * SIGN_MNIST_SIDE + 1


def is_sign_mnist_csv(path: Path) -> bool:
    """Whether ``path`` is a CSV whose header starts ``label,pixel1``."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return len(header) > 2 and [h.strip().lower() for h in header[:2]] == ["label", "pixel1"]


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            rows = []
            for row in reader:
                if not row or (reader.line_num == 1 and row[0].strip().lower() == "label"):
                    continue
                rows.append((reader.line_num, row))
    except FileNotFoundError:
        raise DatasetError(f"data file not found: {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read CSV: {exc}") from exc
    return rows


def _parse_row(path: Path, line: int, row: list[str]) -> np.ndarray:
    where = f"{path} row {line}"
    if len(row) != _WIDTH:
        raise DatasetError(
            f"{where}: {len(row)} values; expected {_WIDTH} (label,pixel1..pixel{_WIDTH - 1})"
        )
    try:
        values = np.array([int(v) for v in row], dtype=np.int64)
    except ValueError:
        raise DatasetError(
            f"{where}: non-integer value; expected a label and {_WIDTH - 1} pixel values 0-255"
        ) from None
    if not 0 <= values[0] < len(SIGN_MNIST_CLASSES):
        raise DatasetError(
            f"{where}: label {values[0]} is not in the class list; "
            f"expected 0-{len(SIGN_MNIST_CLASSES) - 1} (A-Z)"
        )
    if values[1:].min() < 0 or values[1:].max() > 255:
        raise DatasetError(f"{where}: pixel values must be 0-255")
    return values


def load_sign_mnist(
    path: Path, contract: ImageContract, *, limit: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Read a Sign Language MNIST CSV, resized to the contract through the shared preprocessing.

    Args:
        path: the CSV file (header ``label,pixel1,...,pixel784`` optional).
        contract: color mode, size and resize filter of the images.
        limit: read only a seeded random subset of this many rows (the others are not parsed).
        seed: seed of the subset.

    Returns:
        uint8 pixels (N, H, W, C) per the contract and int64 labels (N,), 0-25 for A-Z.

    Raises:
        DatasetError: a row with the wrong number of values, a non-integer or out-of-range
            pixel, or a label outside 0-25 (names the row).
    """
    rows = _read_rows(path)
    if not rows:
        raise DatasetError(f"{path}: no data rows; expected label,pixel1..pixel784 rows")
    table = np.stack([_parse_row(path, *rows[i]) for i in subset_indices(len(rows), limit, seed)])
    images = table[:, 1:].astype(np.uint8).reshape(-1, SIGN_MNIST_SIDE, SIGN_MNIST_SIDE)
    return array_pixels(images, contract), table[:, 0]
