"""Datasets as uint8 pixels plus labels: MNIST, Sign Language MNIST and the raw disk layouts.

Every loader returns pixels shaped (N, H, W, C) at the image contract's size and color
mode, produced by the service's own preprocessing (:mod:`contract.preprocessing`); the
float32 normalization is applied afterwards by :mod:`training.data.inputs` with the service's
``normalize``. Composed, the two are exactly ``preprocess_image`` / ``preprocess_pixels``.

``--data`` may be:

* ``mnist`` — download MNIST with ``keras.datasets.mnist``;
* a ``.npz`` file with ``x_train, y_train, x_test, y_test`` (MNIST's own layout);
* a Sign Language MNIST CSV (header ``label,pixel1,...,pixel784``);
* a ``label,location`` CSV, a JSON list of ``{label, location}``, or a folder of class
  sub-folders (see :mod:`training.data.layouts`).

MNIST and Sign Language MNIST ship a test set (for Sign Language MNIST give it with
``test_data``); the raw layouts use ``test_data`` when given, else hold out
``test_split`` of the images.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from contract.model_card import ImageContract
from training.data.layouts import (
    DatasetError,
    Entry,
    array_pixels,
    load_entries,
    natural_sorted,
    read_csv_index,
    read_folders,
    read_json_index,
)
from training.data.sampling import seeded_split, subset_indices
from training.data.sign_mnist import SIGN_MNIST_CLASSES, is_sign_mnist_csv, load_sign_mnist

FORMATS = ("auto", "mnist", "sign_mnist", "folders", "csv", "json")
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
MNIST_CLASSES = tuple(str(digit) for digit in range(10))

__all__ = [
    "FORMATS",
    "Dataset",
    "DatasetError",
    "array_pixels",
    "detect_format",
    "load_dataset",
    "load_mnist",
    "load_sign_mnist",
]


@dataclass(frozen=True)
class Dataset:
    """A labelled image dataset as uint8 pixels.

    Attributes:
        name: short dataset name for provenance (``mnist``, ``sign_mnist``, ``csv:<stem>``).
        source: where it was read from (a path, or ``keras.datasets.mnist``).
        x_train: uint8 (N, H, W, C) training pixels.
        y_train: int64 (N,) class indices.
        x_test: uint8 (M, H, W, C) test pixels.
        y_test: int64 (M,) class indices.
        class_names: class names in output order (index i is class i).
    """

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]


def _labels(values: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    labels = np.asarray(values).reshape(-1)
    if labels.size and (
        not np.issubdtype(labels.dtype, np.integer)
        or labels.min() < 0
        or labels.max() >= num_classes
    ):
        raise DatasetError(
            f"{where}: labels must be integers in [0, {num_classes}), got "
            f"{labels.dtype} values from {labels.min()} to {labels.max()}"
        )
    return labels.astype(np.int64)


def load_mnist(path: Path | None, contract: ImageContract) -> Dataset:
    """MNIST from a local ``mnist.npz`` or, when ``path`` is None, ``keras.datasets.mnist``.

    Raises:
        DatasetError: the file is missing, not an .npz, or lacks MNIST's keys.
    """
    if path is None:
        import keras  # deferred: only the download needs Keras

        try:
            (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        except Exception as exc:  # Keras wraps network failures in a bare Exception
            raise DatasetError(
                f"cannot download MNIST ({exc}); give a local mnist.npz with --data"
            ) from exc
        source = "keras.datasets.mnist"
    else:
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [key for key in MNIST_KEYS if key not in archive.files]
                if missing:
                    raise DatasetError(
                        f"{path}: missing array(s) {', '.join(missing)}; "
                        f"expected an MNIST .npz with {', '.join(MNIST_KEYS)}"
                    )
                x_train, y_train, x_test, y_test = (archive[key] for key in MNIST_KEYS)
        except FileNotFoundError:
            raise DatasetError(f"data file not found: {path}") from None
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            if isinstance(exc, DatasetError):
                raise
            raise DatasetError(f"{path}: not a readable .npz archive: {exc}") from exc
        source = str(path)
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) != len(y):
            raise DatasetError(f"{source}: {len(x)} {split} images but {len(y)} labels")
    return Dataset(
        "mnist",
        source,
        array_pixels(x_train, contract),
        _labels(y_train, 10, source),
        array_pixels(x_test, contract),
        _labels(y_test, 10, source),
        MNIST_CLASSES,
    )


def detect_format(data: str) -> str:
    """Which layout ``data`` holds: mnist, sign_mnist, folders, csv or json.

    Raises:
        DatasetError: the path does not exist or its layout cannot be told.
    """
    path = Path(data).expanduser()
    if data == "mnist" and not path.exists():
        return "mnist"
    if not path.exists():
        raise DatasetError(f"data file not found: {data}")
    if path.is_dir():
        return "folders"
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "mnist"
    if suffix == ".json":
        return "json"
    if suffix == ".csv":
        return "sign_mnist" if is_sign_mnist_csv(path) else "csv"
    raise DatasetError(
        f"{data}: cannot tell the dataset layout; expected 'mnist', an .npz, "
        f"a .csv, a .json or a folder of class sub-folders"
    )


def _index(path: Path, fmt: str) -> list[Entry]:
    if fmt == "folders":
        if not path.is_dir():
            raise DatasetError(f"{path}: expected a folder of class sub-folders")
        return read_folders(path)
    if not path.is_file():
        raise DatasetError(f"data file not found: {path}")
    return read_csv_index(path) if fmt == "csv" else read_json_index(path)


def _hold_out(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    split = seeded_split(x, y, fraction, seed)
    if split is None:
        raise DatasetError(
            f"{source}: {len(x)} images cannot be split into train and a "
            f"{fraction:.0%} test split; give more images or --test-data"
        )
    return split


def _limited(entries: list[Entry], limit: int | None, seed: int) -> list[Entry]:
    return [entries[i] for i in subset_indices(len(entries), limit, seed)]


def load_dataset(
    data: str,
    contract: ImageContract,
    *,
    fmt: str = "auto",
    test_data: str | None = None,
    test_split: float = 0.1,
    class_names: Sequence[str] | None = None,
    seed: int = 0,
    limit: int | None = None,
) -> Dataset:
    """Load a dataset in any supported layout as uint8 pixels at the contract's size.

    Args:
        data: ``mnist``, or a path (see the module docstring).
        contract: color mode, size and resize filter of the images (normalization unused).
        fmt: one of :data:`FORMATS`; ``auto`` tells it from ``data``.
        test_data: a test set in the same layout (raw layouts and Sign Language MNIST).
        test_split: fraction held out as the test set when there is no ``test_data``.
        class_names: the class list in output order; default: the sorted labels found.
        seed: seed of the held-out split and of the ``limit`` subsets.
        limit: read at most this many images from ``data`` (before the test hold-out) and
            at most this many from the test set: a seeded random subset, for smoke runs.
            The images left out are never decoded.

    Raises:
        DatasetError: anything wrong with the data, naming file/row and what was expected.
    """
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}; expected one of {FORMATS}")
    fmt = detect_format(data) if fmt == "auto" else fmt
    if test_data is not None and not Path(test_data).expanduser().exists():
        raise DatasetError(f"test data file not found: {test_data}")
    if fmt in ("mnist", "sign_mnist") and class_names:
        raise DatasetError(
            f"{data}: {fmt} has fixed classes; a class list applies only to "
            f"the folder, CSV and JSON layouts"
        )
    if fmt == "mnist":
        if test_data is not None:
            raise DatasetError(f"{data}: MNIST brings its own test set; drop the test data")
        full = load_mnist(None if data == "mnist" else Path(data).expanduser(), contract)
        train = subset_indices(len(full.x_train), limit, seed)
        test = subset_indices(len(full.x_test), limit, seed)
        return replace(
            full,
            x_train=full.x_train[train],
            y_train=full.y_train[train],
            x_test=full.x_test[test],
            y_test=full.y_test[test],
        )
    path = Path(data).expanduser()
    if fmt == "sign_mnist":
        x, y = load_sign_mnist(path, contract, limit=limit, seed=seed)
        if test_data is not None:
            x_test, y_test = load_sign_mnist(
                Path(test_data).expanduser(), contract, limit=limit, seed=seed
            )
        else:
            x, y, x_test, y_test = _hold_out(x, y, test_split, seed, str(path))
        return Dataset("sign_mnist", str(path), x, y, x_test, y_test, SIGN_MNIST_CLASSES)
    entries = _index(path, fmt)
    names = tuple(class_names) if class_names else tuple(natural_sorted(e.label for e in entries))
    x, y = load_entries(_limited(entries, limit, seed), contract, names)
    if test_data is not None:
        test_entries = _limited(_index(Path(test_data).expanduser(), fmt), limit, seed)
        x_test, y_test = load_entries(test_entries, contract, names)
    else:
        x, y, x_test, y_test = _hold_out(x, y, test_split, seed, str(path))
    name = f"{fmt}:{path.stem if path.is_file() else path.name}"
    return Dataset(name, str(path), x, y, x_test, y_test, names)
